-- esc event store, migration 18: group commit (issue #15 item 1).
--
-- append_group() stores the appends of many requests, to any streams, in
-- the one transaction of its statement: a group commit client
-- (esc_group_commit, eventstore/src/group.c) coalesces concurrent
-- esc_append calls of one process into one call, so N appends cost one
-- commit (one WAL flush) instead of N. Each request keeps its own
-- outcome, decided by checks that raise nothing: its expected version,
-- a tombstone, its ids stored already (the original result, or ES002
-- when stored with other content), a partial overlap, metadata that
-- esc_metadata_decode would refuse. A refused request writes nothing and
-- its neighbours go on. What can still raise (a constraint that the
-- client's checks make unreachable, an id that another session is
-- storing at the same moment) aborts the whole call, so nothing of it is
-- stored, and the client sends each request again on its own. No
-- subtransaction per request: see docs/decisions/0019-group-commit.md.
--
-- p_counts[i] events of request i follow those of the requests before it
-- in the event arrays. One row per request, in request order:
--   status 0 appended, 1 duplicate (the original result), 2 conflict
--   (actual_version says why), 3 tombstoned, 4 refused (err_state and
--   err_message say why, as the SQLSTATE and message append() raises).
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
  v_n      integer;
  v_exp    bigint;
  v_ids    uuid[];
  v_base   bigint;
  v_tomb   boolean;
  v_bad    bigint;
  v_tx     xid8;
  v_cats   text[] := '{}';
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
    v_stream := p_streams[i];
    v_n := p_counts[i];
    v_to := v_from + v_n - 1;
    v_exp := p_expected[i];
    v_ids := p_ids[v_from:v_to];
    status := 4;
    first_version := NULL; last_version := NULL; tx_id := NULL;
    first_global := NULL; last_global := NULL; actual_version := NULL;
    err_state := NULL; err_message := NULL;

    -- Metadata as check_metadata() judges it, each distinct value once.
    SELECT min(r.k) INTO v_bad
      FROM (SELECT DISTINCT ON (m) m, k
              FROM unnest(p_metadata[v_from:v_to]) WITH ORDINALITY AS x(m, k)
             WHERE m IS NOT NULL ORDER BY m, k) r
     WHERE NOT @SCHEMA@.metadata_valid(r.m);
    IF v_bad IS NOT NULL THEN
      err_state := '23514';
      err_message := format('event %s of the append: metadata is not what '
                            'esc_metadata_decode accepts', v_bad - 1);
    -- Ids stored already, by an earlier transaction or an earlier request
    -- of this one: stored_result()'s judgement, without raising.
    ELSIF EXISTS (SELECT 1 FROM @SCHEMA@.events e
                   WHERE e.event_id = v_ids[1]) THEN
      SELECT e.stream_version INTO v_base
        FROM @SCHEMA@.events e WHERE e.event_id = v_ids[1];
      SELECT CASE WHEN count(*) = v_n THEN 1 ELSE 4 END, max(e.tx_id),
             min(e.global_position), max(e.global_position)
        INTO status, tx_id, first_global, last_global
        FROM unnest(v_ids, p_types[v_from:v_to],
                    p_schema_versions[v_from:v_to], p_data[v_from:v_to])
               WITH ORDINALITY AS r(id, type, sv, data, ord)
        JOIN @SCHEMA@.events e ON e.event_id = r.id
       WHERE e.stream_id = v_stream AND e.stream_version = v_base + r.ord - 1
         AND e.event_type = r.type AND e.schema_version = r.sv
         AND e.data = r.data;
      IF status = 1 THEN
        first_version := v_base;
        last_version := v_base + v_n - 1;
        SELECT s.version INTO actual_version
          FROM @SCHEMA@.streams s WHERE s.stream_id = v_stream;
      ELSE
        tx_id := NULL; first_global := NULL; last_global := NULL;
        err_state := 'ES002';
        err_message := format('event id %s is stored already with other '
                              'content, in another stream or in another '
                              'order', v_ids[1]);
      END IF;
    ELSIF v_n > 1 AND EXISTS (SELECT 1 FROM @SCHEMA@.events e
                               WHERE e.event_id = ANY (v_ids[2:])) THEN
      err_state := '23505';
      err_message := 'some of the event ids are stored already, not all of '
                     'them: a partial retry';
    ELSE
      -- The expected version, checked as the row is bumped (append_fast).
      v_base := NULL;
      IF v_exp = -3 OR v_exp > 0 THEN
        UPDATE @SCHEMA@.streams s
           SET version = s.version + v_n, updated_at = now()
         WHERE s.stream_id = v_stream AND NOT s.tombstoned
           AND ((v_exp = -3 AND s.version > 0) OR s.version = v_exp)
        RETURNING s.version - v_n INTO v_base;
      ELSE
        INSERT INTO @SCHEMA@.streams AS s (stream_id, version)
        VALUES (v_stream, v_n)
        ON CONFLICT (stream_id) DO UPDATE
          SET version = s.version + excluded.version, updated_at = now()
          WHERE NOT s.tombstoned
            AND (v_exp = -1 OR s.version = 0)
        RETURNING s.version - v_n INTO v_base;
      END IF;
      IF v_base IS NULL THEN
        SELECT s.version, s.tombstoned INTO actual_version, v_tomb
          FROM @SCHEMA@.streams s WHERE s.stream_id = v_stream;
        status := CASE WHEN v_tomb THEN 3 ELSE 2 END;
        actual_version := coalesce(actual_version, 0);
      ELSE
        v_tx := coalesce(v_tx, pg_current_xact_id());
        WITH ins AS (
          INSERT INTO @SCHEMA@.events (stream_id, stream_version, event_id,
                                       event_type, schema_version, data,
                                       metadata, tx_id)
          SELECT v_stream, v_base + r.ord, r.id, r.type, r.sv, r.data, r.md,
                 v_tx
            FROM unnest(v_ids, p_types[v_from:v_to],
                        p_schema_versions[v_from:v_to], p_data[v_from:v_to],
                        p_metadata[v_from:v_to])
                   WITH ORDINALITY AS r(id, type, sv, data, md, ord)
          RETURNING global_position)
        SELECT min(global_position), max(global_position)
          INTO first_global, last_global FROM ins;
        status := 0;
        tx_id := v_tx;
        first_version := v_base + 1;
        last_version := v_base + v_n;
        actual_version := v_base + v_n;
        v_cats := v_cats || split_part(v_stream, '-', 1);
      END IF;
    END IF;
    RETURN NEXT;
    v_from := v_to + 1;
  END LOOP;
  -- One wake-up per category (a hint; readers re-read from their
  -- checkpoint), not one per request.
  PERFORM @SCHEMA@.notify_waiters(c) FROM (SELECT DISTINCT c
                                             FROM unnest(v_cats) c) x;
END
$$;

REVOKE ALL ON FUNCTION @SCHEMA@.append_group(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @SCHEMA@.append_group(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[]) TO @WRITER@;
