-- esc event store, migration 21: tags, and appends conditioned on a query
-- of tagged events (issue #21 items 2 and 3).
--
-- A tag is "key:value" (tag_valid below, the same rule as the client's
-- esc_tag_valid). Tags live in event_tags, one row per (tag, event),
-- written only by append_tagged(), so an untagged append (append_fast,
-- append, append_group, append_atomic) costs what it cost before. Reading
-- by tag walks the (tag, global_position) key, never the log.
--
-- append_tagged() appends like append_atomic() (one transaction, all or
-- nothing, idempotent by event ids) and, when given a consistency token
-- (a pg_snapshot as text, read in the same statement as the events of the
-- query), first checks that no event matching the query was appended
-- after it: ES011 naming the first such event. Before anything else it
-- takes a transaction-scoped advisory lock on every tag it writes and
-- every tag of its query, in key order, so two appenders whose tags meet
-- serialize and the later one's check (a new statement, so a new snapshot
-- at READ COMMITTED) sees what the earlier one committed; appenders with
-- disjoint tags take disjoint locks. See
-- docs/decisions/0022-tags-and-conditional-appends.md.

-- ---------------------------------------------------------------- tags --

-- key: 1..64 bytes of [A-Za-z0-9_.-]; ':'; value: no control bytes; at
-- most 128 bytes in all (text is valid UTF-8 in the database already).
CREATE FUNCTION @SCHEMA@.tag_valid(p_tag text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT octet_length(p_tag) <= 128
     AND p_tag ~ '^[A-Za-z0-9_.-]{1,64}:[^\x01-\x1f\x7f]+$';
$$;

CREATE TABLE @SCHEMA@.event_tags (
  tag             text   NOT NULL CHECK (@SCHEMA@.tag_valid(tag)),
  global_position bigint NOT NULL,
  PRIMARY KEY (tag, global_position)
);
-- An event's own tags: the idempotency check of a retry, and showing them.
CREATE INDEX event_tags_by_event ON @SCHEMA@.event_tags (global_position);

-- The refusals below are SQLSTATE 22023 (invalid parameter value): the
-- client reports them as ESC_EINVAL with this message.
CREATE FUNCTION @SCHEMA@.check_tags(p_ids uuid[], p_tag_event integer[],
                                    p_tags text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_bad record;
BEGIN
  IF cardinality(p_tag_event) IS DISTINCT FROM cardinality(p_tags) THEN
    RAISE EXCEPTION 'append: the tag arrays do not add up'
      USING ERRCODE = '22023';
  END IF;
  SELECT t.tag, t.ev INTO v_bad FROM unnest(p_tags, p_tag_event) AS t(tag, ev)
   WHERE t.ev IS NULL OR t.ev < 1 OR t.ev > cardinality(p_ids)
      OR t.tag IS NULL OR NOT @SCHEMA@.tag_valid(t.tag) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'append: event % has tag "%": a tag is key:value, the key '
                    '1..64 bytes of [A-Za-z0-9_.-], the value without control '
                    'characters, 128 bytes at most', v_bad.ev - 1, v_bad.tag
      USING ERRCODE = '22023';
  END IF;
  SELECT t.ev, count(*) AS n, count(DISTINCT t.tag) AS d INTO v_bad
    FROM unnest(p_tags, p_tag_event) AS t(tag, ev) GROUP BY t.ev
  HAVING count(*) > 16 OR count(*) <> count(DISTINCT t.tag) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'append: event % has % tags (% distinct): at most 16, '
                    'each once', v_bad.ev - 1, v_bad.n, v_bad.d
      USING ERRCODE = '22023';
  END IF;
END
$$;

-- A query is items 1..n (q_tag_item, q_type_item say whose each tag and
-- type is); an event matches an item when it has every tag of the item
-- and, when the item names types, one of them; it matches the query when
-- it matches an item. Every item has a tag: that is what makes the tag
-- locks cover every event that could match.
CREATE FUNCTION @SCHEMA@.check_query(q_tags text[], q_tag_item integer[],
                                     q_types text[], q_type_item integer[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_items integer := coalesce((SELECT max(i) FROM unnest(q_tag_item) i), 0);
BEGIN
  IF cardinality(q_tags) IS DISTINCT FROM cardinality(q_tag_item)
     OR cardinality(q_types) IS DISTINCT FROM cardinality(q_type_item)
     OR v_items < 1 OR v_items > 16 OR cardinality(q_tags) > 256
     OR cardinality(q_types) > 256
     OR EXISTS (SELECT 1 FROM unnest(q_tags, q_tag_item) AS q(tag, item)
                 WHERE q.item IS NULL OR q.item < 1 OR q.tag IS NULL
                    OR NOT @SCHEMA@.tag_valid(q.tag))
     OR EXISTS (SELECT 1 FROM unnest(q_types, q_type_item) AS q(ty, item)
                 WHERE q.ty IS NULL OR q.item IS NULL OR q.item < 1
                    OR q.item > v_items)
     OR EXISTS (SELECT 1 FROM generate_series(1, v_items) g(item)
                 WHERE g.item <> ALL (q_tag_item)) THEN
    RAISE EXCEPTION 'condition: a query is 1..16 items, each with 1..16 valid '
                    'tags and any types' USING ERRCODE = '22023';
  END IF;
END
$$;

-- The global positions of the events after p_after matching the query:
-- the tag index finds the candidates, the events' key their types. Call
-- it in FROM ("IN (SELECT m FROM query_matches(...) m)"): there the
-- planner inlines it and sees the tag index's statistics; in a select
-- list it is an opaque set of 1000 rows and the join scans the log.
CREATE FUNCTION @SCHEMA@.query_matches(q_tags text[], q_tag_item integer[],
                                       q_types text[], q_type_item integer[],
                                       p_after bigint)
RETURNS SETOF bigint LANGUAGE sql STABLE AS $$
  WITH q AS (SELECT DISTINCT u.tag, u.item
               FROM unnest(q_tags, q_tag_item) AS u(tag, item)),
       need AS (SELECT q.item, count(*) AS n FROM q GROUP BY q.item),
       -- LATERAL with OFFSET 0 (not pulled up into a join): one range
       -- of the tag key per tag, also in a generic plan, which knows
       -- neither the tags nor how many and would rather scan the table.
       hit AS (SELECT t.global_position, q.item
                 FROM q CROSS JOIN LATERAL (
                        SELECT g.global_position FROM @SCHEMA@.event_tags g
                         WHERE g.tag = q.tag AND g.global_position > p_after
                        OFFSET 0) t
                GROUP BY t.global_position, q.item
               HAVING count(*) = (SELECT need.n FROM need
                                   WHERE need.item = q.item))
  SELECT DISTINCT h.global_position
    FROM hit h JOIN @SCHEMA@.events e ON e.global_position = h.global_position
   WHERE NOT EXISTS (SELECT 1 FROM unnest(q_type_item) ti WHERE ti = h.item)
      OR e.event_type IN (SELECT x.ty FROM unnest(q_types, q_type_item)
                                             AS x(ty, it) WHERE x.it = h.item);
$$;

-- Transaction-scoped locks on the tags, in key order (two-int keys, as
-- lock_stream's, from a hash seeded apart from the streams' so that a tag
-- and a stream of the same text get different keys). Taken before
-- anything assigns the transaction id (migration 5) and before the
-- stream locks, in every tagged append: one order, no cycles.
CREATE FUNCTION @SCHEMA@.lock_tags(p_tags text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_k record;
BEGIN
  FOR v_k IN
    SELECT DISTINCT (h >> 32)::int4 AS hi, (h & 2147483647)::int4 AS lo
      FROM (SELECT hashtextextended(t, hashtext(@CHANNEL_LIT@ || '/tags')) h
              FROM unnest(p_tags) t) x
     ORDER BY 1, 2
  LOOP
    PERFORM pg_advisory_xact_lock(v_k.hi, v_k.lo);
  END LOOP;
END
$$;

-- ------------------------------------------------------- the condition --

-- Raises ES011 when an event matching the query is not visible in the
-- token's snapshot: it committed after the read, whatever its position.
-- DETAIL: "global/stream_version/event_id/type/stream_id".
-- The generic plan, always: it is good (query_matches keeps index ranges
-- in it), and with the default the planner judged it costlier than the
-- custom ones and planned the inlined query anew on every call, some
-- 0.8 ms against 0.06 ms for the check.
CREATE FUNCTION @SCHEMA@.check_condition(q_tags text[], q_tag_item integer[],
                                         q_types text[],
                                         q_type_item integer[],
                                         p_token text) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_snap pg_snapshot := p_token::pg_snapshot;
  v_e    record;
BEGIN
  SELECT e.global_position, e.stream_version, e.event_id, e.event_type,
         e.stream_id INTO v_e
    FROM @SCHEMA@.events e
   WHERE e.global_position IN (SELECT m FROM @SCHEMA@.query_matches(
                                 q_tags, q_tag_item, q_types, q_type_item, 0)
                                 m)
     AND NOT pg_visible_in_snapshot(e.tx_id, v_snap)
   ORDER BY e.global_position LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'append: an event matching the condition was appended '
                    'after the token' USING ERRCODE = 'ES011',
          DETAIL = format('%s/%s/%s/%s/%s', v_e.global_position,
                          v_e.stream_version, v_e.event_id, v_e.event_type,
                          v_e.stream_id);
  END IF;
END
$$;

-- ------------------------------------------------------------- append --

-- append_atomic's arrays, then the tags (p_tags[k] belongs to event
-- p_tag_event[k], counting from 1 over every request's events), then the
-- condition: a query and a token, or NULL for none.
CREATE FUNCTION @SCHEMA@.append_tagged(
  p_streams         text[],
  p_expected        bigint[],
  p_counts          integer[],
  p_ids             uuid[],
  p_types           text[],
  p_schema_versions integer[],
  p_data            bytea[],
  p_metadata        bytea[],
  p_tag_event       integer[],
  p_tags            text[],
  q_tags            text[],
  q_tag_item        integer[],
  q_types           text[],
  q_type_item       integer[],
  p_token           text)
RETURNS TABLE (status integer, first_version bigint, last_version bigint,
               tx_id xid8, first_global bigint, last_global bigint,
               actual_version bigint, err_state text, err_message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_r        record;
  v_appended boolean := false;
  v_stored   boolean;
BEGIN
  PERFORM @SCHEMA@.check_tags(p_ids, p_tag_event, p_tags);
  IF p_token IS NOT NULL THEN
    PERFORM @SCHEMA@.check_query(q_tags, q_tag_item, q_types, q_type_item);
  END IF;
  PERFORM @SCHEMA@.lock_tags(p_tags || coalesce(q_tags, '{}'));
  -- A retry of a call that committed finds its ids and must get the
  -- original results, not a conflict with its own events.
  v_stored := EXISTS (SELECT 1 FROM @SCHEMA@.events e
                       WHERE e.event_id = p_ids[1]);
  IF p_token IS NOT NULL AND NOT v_stored THEN
    PERFORM @SCHEMA@.check_condition(q_tags, q_tag_item, q_types,
                                     q_type_item, p_token);
  END IF;
  -- One stream, not a retry: esc_append's fast path (migration 12), a
  -- third of append_atomic's cost. When its expectation does not hold it
  -- stores nothing, and append_atomic says why.
  IF cardinality(p_streams) = 1 AND NOT v_stored THEN
    SELECT * INTO v_r FROM @SCHEMA@.append_fast(
      p_streams[1], p_expected[1], p_ids, p_types, p_schema_versions,
      p_data, p_metadata) AS f;
    IF v_r.base IS NOT NULL THEN
      status := 0; first_version := v_r.base + 1;
      last_version := v_r.base + cardinality(p_ids);
      tx_id := v_r.tx_id; first_global := v_r.first_global;
      last_global := v_r.last_global; actual_version := last_version;
      err_state := NULL; err_message := NULL;
      v_appended := true;
      RETURN NEXT;
    END IF;
  END IF;
  IF NOT v_appended THEN
    FOR v_r IN SELECT * FROM @SCHEMA@.append_atomic(
                 p_streams, p_expected, p_counts, p_ids, p_types,
                 p_schema_versions, p_data, p_metadata) AS a
    LOOP
      status := v_r.status; first_version := v_r.first_version;
      last_version := v_r.last_version; tx_id := v_r.tx_id;
      first_global := v_r.first_global; last_global := v_r.last_global;
      actual_version := v_r.actual_version; err_state := v_r.err_state;
      err_message := v_r.err_message;
      v_appended := v_appended OR v_r.status = 0;
      RETURN NEXT;
    END LOOP;
  END IF;
  IF v_appended THEN
    INSERT INTO @SCHEMA@.event_tags (tag, global_position)
    SELECT t.tag, e.global_position
      FROM unnest(p_tags, p_tag_event) AS t(tag, ev)
      JOIN @SCHEMA@.events e ON e.event_id = p_ids[t.ev];
  ELSIF EXISTS (
      (SELECT p_ids[t.ev], t.tag FROM unnest(p_tags, p_tag_event) AS t(tag, ev)
       EXCEPT
       SELECT e.event_id, g.tag FROM @SCHEMA@.event_tags g
         JOIN @SCHEMA@.events e ON e.global_position = g.global_position
        WHERE e.event_id = ANY (p_ids))
      UNION ALL
      (SELECT e.event_id, g.tag FROM @SCHEMA@.event_tags g
         JOIN @SCHEMA@.events e ON e.global_position = g.global_position
        WHERE e.event_id = ANY (p_ids)
       EXCEPT
       SELECT p_ids[t.ev], t.tag
         FROM unnest(p_tags, p_tag_event) AS t(tag, ev))) THEN
    RAISE EXCEPTION 'append: the event ids are stored already with other tags'
      USING ERRCODE = 'ES002';
  END IF;
END
$$;

REVOKE ALL ON FUNCTION @SCHEMA@.append_tagged(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[], integer[], text[], text[],
  integer[], text[], integer[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @SCHEMA@.append_tagged(text[], bigint[], integer[],
  uuid[], text[], integer[], bytea[], bytea[], integer[], text[], text[],
  integer[], text[], integer[], text) TO @WRITER@;
GRANT EXECUTE ON FUNCTION @SCHEMA@.query_matches(text[], integer[], text[],
  integer[], bigint) TO @WRITER@, @READER@;
GRANT SELECT ON @SCHEMA@.event_tags TO @WRITER@, @READER@;
