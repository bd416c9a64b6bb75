-- esc event store, migration 18: group commit (issue #15 item 1).
--
-- append_group() stores the appends of many requests, to any streams, in
-- the one transaction of its statement: a group commit client
-- (esc_group_commit, eventstore/src/group.c) coalesces concurrent
-- esc_append calls of one process into one call, so N appends cost one
-- commit (one WAL flush) instead of N. Each request keeps its own
-- outcome: it runs in its own subtransaction (a BEGIN ... EXCEPTION block),
-- so a conflict, a tombstone, an id reused with other content or any
-- other error undoes that request only and is reported in its row. See
-- docs/decisions/0019-group-commit.md.
--
-- p_counts[i] events of request i follow those of the requests before it
-- in the event arrays. One row per request, in request order:
--   status 0 appended, 1 duplicate (the original result), 2 conflict
--   (actual_version says why), 3 tombstoned, 4 failed (err_state, err_message).
--
-- Stream order (migration 5): the transaction id is assigned by the first
-- row a request writes, so every stream's lock is taken first, before any
-- request runs. The locks are taken in the order of their keys, which all
-- group calls share: two flushes never wait for each other in a cycle.
CREATE FUNCTION @SCHEMA@.append_group(
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
  v_stream text;
  v_from   integer := 1;
  v_to     integer;
BEGIN
  IF cardinality(p_streams) <> cardinality(p_expected)
     OR cardinality(p_streams) <> cardinality(p_counts)
     OR (SELECT sum(c) FROM unnest(p_counts) c) <> cardinality(p_ids)
     OR EXISTS (SELECT 1 FROM unnest(p_counts) c WHERE c IS NULL OR c < 1)
  THEN
    RAISE EXCEPTION 'append_group: the request arrays do not add up'
      USING ERRCODE = '22023';
  END IF;
  FOR v_stream IN
    SELECT s FROM (SELECT DISTINCT s,
                          hashtextextended(s, hashtext(@CHANNEL_LIT@)) AS h
                     FROM unnest(p_streams) s) k
     ORDER BY h >> 32, h & 2147483647
  LOOP
    PERFORM @SCHEMA@.lock_stream(v_stream);
  END LOOP;
  FOR i IN 1 .. cardinality(p_streams) LOOP
    v_to := v_from + p_counts[i] - 1;
    err_state := NULL;
    err_message := NULL;
    BEGIN
      PERFORM @SCHEMA@.check_metadata(p_metadata[v_from:v_to]);
      SELECT a.status, a.first_version, a.last_version, a.tx_id,
             a.first_global, a.last_global, a.actual_version
        INTO status, first_version, last_version, tx_id, first_global,
             last_global, actual_version
        FROM @SCHEMA@.append_locked(p_streams[i], p_expected[i],
                                    p_ids[v_from:v_to], p_types[v_from:v_to],
                                    p_schema_versions[v_from:v_to],
                                    p_data[v_from:v_to],
                                    p_metadata[v_from:v_to]) a;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE,
                              err_message = MESSAGE_TEXT;
      status := 4;
      first_version := NULL;
      last_version := NULL;
      tx_id := NULL;
      first_global := NULL;
      last_global := NULL;
      actual_version := NULL;
    END;
    RETURN NEXT;
    v_from := v_to + 1;
  END LOOP;
END
$$;

REVOKE ALL ON FUNCTION @SCHEMA@.append_group(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @SCHEMA@.append_group(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[]) TO @WRITER@;
