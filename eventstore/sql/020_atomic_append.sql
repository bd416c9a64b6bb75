-- esc event store, migration 20: atomic multi-stream appends (issue #21
-- item 1).
--
-- append_atomic() appends to several streams in one transaction, each
-- with its own expected version, all or nothing. It runs append_group()
-- (migration 18), which checks each request without raising and takes
-- every stream's lock first, in the order of the lock keys that every
-- group flush shares (so an atomic append and a flush never wait for each
-- other in a cycle), before anything assigns the transaction id. Then:
--   every request appended: its rows, as append_group returns them;
--   every request a duplicate (a retry of an atomic append that
--     committed): the original results, nothing written;
--   anything else: it raises, so the transaction stores nothing:
--     a refused request (metadata, an id stored with other content):
--       that request's SQLSTATE and message, "request N: ...";
--     appended and duplicate requests mixed: ES002 (a partial retry);
--     conflicts or tombstones: ES010, with DETAIL one "status/actual"
--       per request, comma separated, in request order, for the client
--       to name every stream whose expectation failed.
-- See docs/decisions/0021-consistency-across-streams.md.
CREATE FUNCTION @SCHEMA@.append_atomic(
  p_streams         text[],
  p_expected        bigint[],
  p_counts          integer[],
  p_ids             uuid[],
  p_types           text[],
  p_schema_versions integer[],
  p_data            bytea[],
  p_metadata        bytea[])
RETURNS TABLE (status integer, first_version bigint, last_version bigint,
               tx_id xid8, first_global bigint, last_global bigint,
               actual_version bigint, err_state text, err_message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_r      record;
  v_detail text[] := '{}';
  v_states integer[] := '{}';
BEGIN
  IF cardinality(p_streams) IS DISTINCT FROM
     (SELECT count(DISTINCT s)::integer FROM unnest(p_streams) s)
     OR cardinality(p_streams) = 0 THEN
    RAISE EXCEPTION 'append_atomic: a stream appears twice, or none is given'
      USING ERRCODE = '22023';
  END IF;
  -- Rows returned with RETURN NEXT are kept until the function returns;
  -- a RAISE after them discards them with the transaction's writes.
  FOR v_r IN SELECT * FROM @SCHEMA@.append_group(
               p_streams, p_expected, p_counts, p_ids, p_types,
               p_schema_versions, p_data, p_metadata)
               WITH ORDINALITY AS g(st, fv, lv, tx, fg, lg, av, es, em, ord)
             ORDER BY g.ord
  LOOP
    IF v_r.st = 4 THEN
      RAISE EXCEPTION 'request % (%): %', v_r.ord - 1, p_streams[v_r.ord],
                      v_r.em USING ERRCODE = v_r.es;
    END IF;
    v_states := v_states || v_r.st;
    v_detail := v_detail || format('%s/%s', v_r.st, coalesce(v_r.av, 0));
    status := v_r.st; first_version := v_r.fv; last_version := v_r.lv;
    tx_id := v_r.tx; first_global := v_r.fg; last_global := v_r.lg;
    actual_version := v_r.av; err_state := NULL; err_message := NULL;
    RETURN NEXT;
  END LOOP;
  IF 2 = ANY (v_states) OR 3 = ANY (v_states) THEN
    RAISE EXCEPTION 'append_atomic: the expected version of some streams '
                    'does not hold' USING ERRCODE = 'ES010',
                    DETAIL = array_to_string(v_detail, ',');
  END IF;
  IF 0 = ANY (v_states) AND 1 = ANY (v_states) THEN
    RAISE EXCEPTION 'append_atomic: some requests are stored already, not '
                    'all of them: a partial retry' USING ERRCODE = 'ES002';
  END IF;
END
$$;

REVOKE ALL ON FUNCTION @SCHEMA@.append_atomic(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @SCHEMA@.append_atomic(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[]) TO @WRITER@;
