-- esc event store, migration 12: the writer writes only through esc.
--
-- Until now the writer role held INSERT on events and INSERT/UPDATE on
-- streams, because the fast append path was a plain statement. With
-- direct SQL a writer could store an event with a made-up transaction id
-- or position (live subscribers never see it, a rebuild does) or update a
-- stream row (un-tombstone it). Now every write a writer or reader makes
-- goes through a SECURITY DEFINER function of this schema, with its
-- search_path pinned, which assigns positions and transaction ids itself;
-- constraints on the tables check what is stored whoever stores it. The
-- roles keep SELECT where reads need it and EXECUTE on these functions,
-- nothing else. See docs/decisions/0013-writes-through-functions.md.

-- -------------------------------------------------- what may be stored --

-- The bytes of a msgpack value as the client's esc_msgpack_check and
-- esc_metadata_decode accept them (eventstore/src/codec_check.c,
-- codec_metadata.c): one well-formed object, no trailing bytes, nesting
-- <= 32, <= 100000 items, a map at the top whose known keys have their
-- types (ids: 36-character UUID strings, actor: a string, time: an int64;
-- nil for any of them). Unknown keys may hold anything well-formed.
--
-- What esc_metadata_encode writes (its keys in its order) is recognised
-- by a few comparisons; anything else is walked object by object, which
-- costs PL/pgSQL some 80 us for a four-key map.
-- 36 bytes spelling a UUID as the client writes and reads it.
CREATE FUNCTION @SCHEMA@.is_uuid_text(b bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT length(b) = 36 AND encode(b, 'escape') ~
    '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
$$;

CREATE FUNCTION @SCHEMA@.metadata_canonical(p bytea) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  n   integer := length(p);
  i   integer := 1;          -- offset after the map header
  k   integer := 1;          -- entries seen; time is always there
  b   integer;
  len integer;
  key bytea;
BEGIN
  IF n < 7 THEN
    RETURN false;
  END IF;
  IF get_byte(p, 0) NOT BETWEEN 129 AND 132 THEN
    RETURN false;
  END IF;
  -- "correlation_id" then "causation_id", each optional: a str8 of 36
  -- that is a UUID. The keys are compared with their value's header.
  FOREACH key IN ARRAY ARRAY['\xae636f7272656c6174696f6e5f6964d924',
                             '\xac636175736174696f6e5f6964d924']::bytea[] LOOP
    IF substring(p FROM i + 1 FOR length(key)) = key THEN
      IF NOT @SCHEMA@.is_uuid_text(
               substring(p FROM i + 1 + length(key) FOR 36)) THEN
        RETURN false;
      END IF;
      i := i + length(key) + 36;
      k := k + 1;
    END IF;
  END LOOP;
  -- "actor": fixstr, str8 or str16.
  IF substring(p FROM i + 1 FOR 6) = '\xa56163746f72' AND i + 8 < n THEN
    b := get_byte(p, i + 6);
    IF b BETWEEN 160 AND 191 THEN
      len := 1 + b - 160;
    ELSIF b = 217 THEN
      len := 2 + get_byte(p, i + 7);
    ELSIF b = 218 THEN
      len := 3 + get_byte(p, i + 7) * 256 + get_byte(p, i + 8);
    ELSE
      RETURN false;
    END IF;
    i := i + 6 + len;
    k := k + 1;
  END IF;
  -- "time", last: an int64 as msgpack_pack_int64 writes it.
  IF i + 5 >= n OR substring(p FROM i + 1 FOR 5) <> '\xa474696d65' THEN
    RETURN false;
  END IF;
  b := get_byte(p, i + 5);
  len := CASE WHEN b < 128 OR b >= 224 THEN 0
              WHEN b IN (204, 208) THEN 1 WHEN b IN (205, 209) THEN 2
              WHEN b IN (206, 210) THEN 4 WHEN b = 211 THEN 8
              WHEN b <> 207 OR i + 6 >= n THEN NULL
              WHEN get_byte(p, i + 6) < 128 THEN 8
         END;
  RETURN len IS NOT NULL AND i + 6 + len = n
     AND k = get_byte(p, 0) - 128;
END
$$;

CREATE FUNCTION @SCHEMA@.metadata_valid(p bytea) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  -- Tags 0xc0..0xdf: their class, the bytes of their length field, and
  -- the fixed bytes that follow a scalar.
  cls  text[] := ARRAY['s','-','s','s', 'b','b','b', 'e','e','e', 's','s',
                       'i','i','i','i', 'i','i','i','i', 's','s','s','s','s',
                       't','t','t', 'a','a', 'm','m'];
  lw   integer[] := ARRAY[0,0,0,0, 1,2,4, 1,2,4, 0,0, 0,0,0,0, 0,0,0,0,
                          0,0,0,0,0, 1,2,4, 2,4, 2,4];
  fx   integer[] := ARRAY[0,0,0,0, 0,0,0, 0,0,0, 4,8, 1,2,4,8, 1,2,4,8,
                          2,3,5,9,17, 0,0,0, 0,0, 0,0];
  n     integer := length(p);
  i     integer := 0;          -- offset of the next byte
  b     integer;
  c     text;                  -- class of the object at i
  len   bigint;                -- its length, count or fixed bytes
  items bigint := 0;
  -- owed[1..depth]: per open container, innermost last, how many objects
  -- it still owes (a map two per entry). owed[1] is the whole value, one
  -- object; owed[2] is the top-level map once it is open.
  owed  bigint[] := ARRAY[1];
  depth integer := 1;
  role  text;                  -- 'key' or 'value' of the top-level map
  want  text;                  -- what the value of the last key must be
BEGIN
  IF @SCHEMA@.metadata_canonical(p) THEN
    RETURN true;
  END IF;
  IF n = 0 OR NOT (get_byte(p, 0) BETWEEN 128 AND 143
                   OR get_byte(p, 0) IN (222, 223)) THEN
    RETURN false;
  END IF;
  WHILE depth > 0 LOOP
    IF owed[depth] = 0 THEN     -- the innermost container is complete
      depth := depth - 1;
      CONTINUE;
    END IF;
    IF i >= n THEN RETURN false; END IF;
    -- Directly inside the top-level map, which counts down from twice its
    -- entries: an even count owed means a key is next, odd its value.
    role := CASE WHEN depth <> 2 THEN NULL
                 WHEN owed[2] % 2 = 0 THEN 'key' ELSE 'value' END;
    owed[depth] := owed[depth] - 1;
    b := get_byte(p, i);
    i := i + 1;
    IF b < 128 OR b >= 224 THEN c := 'i'; len := 0;
    ELSIF b < 144 THEN c := 'm'; len := b & 15;
    ELSIF b < 160 THEN c := 'a'; len := b & 15;
    ELSIF b < 192 THEN c := 't'; len := b & 31;
    ELSE
      c := cls[b - 191];
      IF c = '-' THEN RETURN false; END IF;
      len := fx[b - 191];
      IF lw[b - 191] > 0 THEN
        IF i + lw[b - 191] > n THEN RETURN false; END IF;
        len := 0;
        FOR j IN 0 .. lw[b - 191] - 1 LOOP
          len := len * 256 + get_byte(p, i + j);
        END LOOP;
        i := i + lw[b - 191];
      END IF;
    END IF;
    -- The known keys of the top-level map, and their values' types.
    IF role = 'key' THEN
      want := CASE WHEN c <> 't' OR len > 14 OR i + len > n THEN NULL
                   ELSE CASE substring(p FROM i + 1 FOR len::integer)
                          WHEN 'correlation_id'::bytea THEN 'uuid'
                          WHEN 'causation_id'::bytea THEN 'uuid'
                          WHEN 'actor'::bytea THEN 'str'
                          WHEN 'time'::bytea THEN 'int' END END;
    ELSIF role = 'value' AND want IS NOT NULL AND b <> 192 THEN
      -- CASE, not AND: the byte reads must not run past the end.
      IF (CASE want
           WHEN 'int' THEN c <> 'i' OR CASE WHEN b <> 207 THEN false
                                            WHEN i >= n THEN true
                                            ELSE get_byte(p, i) >= 128 END
           WHEN 'str' THEN c <> 't'
           ELSE CASE WHEN c <> 't' OR len <> 36 OR i + 36 > n THEN true
                     ELSE NOT @SCHEMA@.is_uuid_text(
                                substring(p FROM i + 1 FOR 36)) END
         END) THEN
        RETURN false;
      END IF;
    END IF;
    IF c IN ('a', 'm') THEN
      -- Every item needs a byte (a map entry two) before it is counted.
      items := items + len;
      IF c = 'm' THEN len := len * 2; END IF;
      IF len > n - i OR items > 100000 OR depth > 32 THEN RETURN false; END IF;
      depth := depth + 1;
      owed[depth] := len;
    ELSE
      len := len + CASE c WHEN 'e' THEN 1 ELSE 0 END;
      IF len > n - i THEN RETURN false; END IF;
      i := i + len::integer;
    END IF;
  END LOOP;
  RETURN i = n;
END
$$;

-- Metadata of one call, each distinct value once (a command's events
-- share theirs): what esc_metadata_decode would refuse is refused here.
-- Checked by the append functions rather than a table constraint, which
-- would walk every row of a batch (11 us each, a third of a 100-event
-- append).
CREATE FUNCTION @SCHEMA@.check_metadata(p_metadata bytea[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_bad integer;
BEGIN
  SELECT x.k INTO v_bad
    FROM (SELECT DISTINCT ON (m) m, k
            FROM unnest(p_metadata) WITH ORDINALITY AS r(m, k)
           WHERE m IS NOT NULL ORDER BY m, k) x
   WHERE NOT @SCHEMA@.metadata_valid(x.m)
   ORDER BY x.k LIMIT 1;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'event % of the append: metadata is not what '
                    'esc_metadata_decode accepts', v_bad - 1
      USING ERRCODE = '23514';
  END IF;
END
$$;

-- Names as <esc/store.h> defines them; sizes bounded for every writer
-- (clients refuse above their max_event_size, 1 MiB by default; the store
-- refuses above 16 MiB whoever asks). A star and a length, not {0,127}:
-- PostgreSQL's bounded repetition costs 15 times as much per row. NOT
-- VALID: stored rows were checked by the clients that wrote them and
-- stay as they are.
ALTER TABLE @SCHEMA@.streams
  ADD CONSTRAINT streams_stream_id_valid CHECK (
    stream_id ~ '^[A-Za-z0-9_.:@+=/][A-Za-z0-9_.:@+=/-]*$'
    AND octet_length(stream_id) <= 200) NOT VALID;
ALTER TABLE @SCHEMA@.events
  ADD CONSTRAINT events_type_valid CHECK (
    event_type ~ '^[A-Za-z][A-Za-z0-9_.:-]*$'
    AND octet_length(event_type) <= 128) NOT VALID,
  ADD CONSTRAINT events_schema_version_valid CHECK (schema_version >= 1)
    NOT VALID,
  ADD CONSTRAINT events_size_valid CHECK (
    octet_length(data) + coalesce(octet_length(metadata), 0) <= 16777216)
    NOT VALID;

-- --------------------------------------------------------- appending --

-- The fast path of esc_append, as migration 1's append() minus the cold
-- cases: take the stream's lock before anything assigns a transaction id
-- (migration 5), bump the stream row if it matches, insert. base is NULL
-- when the row did not match; the client then calls append(), which says
-- why. "exists" and exact versions > 0 update; the rest may create.
CREATE FUNCTION @SCHEMA@.append_fast(
  p_stream text, p_expected bigint, p_ids uuid[], p_types text[],
  p_schema_versions integer[], p_data bytea[], p_metadata bytea[],
  OUT base bigint, OUT first_global bigint, OUT last_global bigint,
  OUT tx_id xid8, OUT notified integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_n integer := cardinality(p_ids);
BEGIN
  PERFORM @SCHEMA@.check_metadata(p_metadata);
  PERFORM @SCHEMA@.lock_stream(p_stream);
  IF p_expected = -3 OR p_expected > 0 THEN
    UPDATE @SCHEMA@.streams s SET version = s.version + v_n, updated_at = now()
     WHERE s.stream_id = p_stream AND NOT s.tombstoned
       AND ((p_expected = -3 AND s.version > 0) OR s.version = p_expected)
    RETURNING s.version - v_n INTO base;
  ELSE
    INSERT INTO @SCHEMA@.streams AS s (stream_id, version)
    VALUES (p_stream, v_n)
    ON CONFLICT (stream_id) DO UPDATE
      SET version = s.version + excluded.version, updated_at = now()
      WHERE NOT s.tombstoned AND p_expected = -1
    RETURNING s.version - v_n INTO base;
  END IF;
  IF base IS NULL THEN
    RETURN;
  END IF;
  tx_id := pg_current_xact_id();
  WITH ins AS (
    INSERT INTO @SCHEMA@.events (stream_id, stream_version, event_id,
                                 event_type, schema_version, data, metadata,
                                 tx_id)
    SELECT p_stream, base + r.ord, r.id, r.type, r.sv, r.data, r.md, tx_id
      FROM unnest(p_ids, p_types, p_schema_versions, p_data, p_metadata)
             WITH ORDINALITY AS r(id, type, sv, data, md, ord)
    RETURNING global_position)
  SELECT min(global_position), max(global_position)
    INTO first_global, last_global FROM ins;
  notified := @SCHEMA@.notify_waiters(p_stream);
END
$$;

-- One event: scalar parameters, no arrays to build or unnest.
CREATE FUNCTION @SCHEMA@.append_fast1(
  p_stream text, p_expected bigint, p_id uuid, p_type text,
  p_schema_version integer, p_data bytea, p_metadata bytea,
  OUT base bigint, OUT first_global bigint, OUT last_global bigint,
  OUT tx_id xid8, OUT notified integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p_metadata IS NOT NULL AND NOT @SCHEMA@.metadata_canonical(p_metadata)
     AND NOT @SCHEMA@.metadata_valid(p_metadata) THEN
    RAISE EXCEPTION 'event 0 of the append: metadata is not what '
                    'esc_metadata_decode accepts' USING ERRCODE = '23514';
  END IF;
  PERFORM @SCHEMA@.lock_stream(p_stream);
  IF p_expected = -3 OR p_expected > 0 THEN
    UPDATE @SCHEMA@.streams s SET version = s.version + 1, updated_at = now()
     WHERE s.stream_id = p_stream AND NOT s.tombstoned
       AND ((p_expected = -3 AND s.version > 0) OR s.version = p_expected)
    RETURNING s.version - 1 INTO base;
  ELSE
    INSERT INTO @SCHEMA@.streams AS s (stream_id, version)
    VALUES (p_stream, 1)
    ON CONFLICT (stream_id) DO UPDATE
      SET version = s.version + 1, updated_at = now()
      WHERE NOT s.tombstoned AND p_expected = -1
    RETURNING s.version - 1 INTO base;
  END IF;
  IF base IS NULL THEN
    RETURN;
  END IF;
  tx_id := pg_current_xact_id();
  INSERT INTO @SCHEMA@.events (stream_id, stream_version, event_id,
                               event_type, schema_version, data, metadata,
                               tx_id)
  VALUES (p_stream, base + 1, p_id, p_type, p_schema_version, p_data,
          p_metadata, tx_id)
  RETURNING global_position INTO first_global;
  last_global := first_global;
  notified := @SCHEMA@.notify_waiters(p_stream);
END
$$;

-- Wakes a reader registered for the stream's category or for $all; 1 when
-- it notified. Appends pay for NOTIFY only while someone waits.
CREATE FUNCTION @SCHEMA@.notify_waiters(p_stream text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM @SCHEMA@.waiters w
              WHERE w.category IS NULL
                 OR w.category = split_part(p_stream, '-', 1)) THEN
    PERFORM pg_notify(@CHANNEL_LIT@, split_part(p_stream, '-', 1));
    RETURN 1;
  END IF;
  RETURN 0;
END
$$;

-- The cold path checks the same, and it and the waiting functions run as
-- their owner too.
CREATE OR REPLACE FUNCTION @SCHEMA@.append(
  p_stream          text,
  p_expected        bigint,
  p_ids             uuid[],
  p_types           text[],
  p_schema_versions integer[],
  p_data            bytea[],
  p_metadata        bytea[],
  OUT status         integer,
  OUT first_version  bigint,
  OUT last_version   bigint,
  OUT tx_id          xid8,
  OUT first_global   bigint,
  OUT last_global    bigint,
  OUT actual_version bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT @SCHEMA@.check_metadata(p_metadata);
  SELECT @SCHEMA@.lock_stream(p_stream);
  SELECT * FROM @SCHEMA@.append_locked(p_stream, p_expected, p_ids, p_types,
                                       p_schema_versions, p_data, p_metadata);
$$;
ALTER FUNCTION @SCHEMA@.wait_register(text)
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @SCHEMA@.wait_unregister()
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- --------------------------------------------------------- snapshots --

-- Keeps the newest snapshot of a stream; refuses one past the stream's
-- version, which no fold of the log can have produced.
CREATE FUNCTION @SCHEMA@.snapshot_write(p_stream text, p_version bigint,
                                        p_state_version integer,
                                        p_data bytea)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p_version < 1 OR p_state_version < 1 OR NOT EXISTS (
       SELECT 1 FROM @SCHEMA@.streams s
        WHERE s.stream_id = p_stream AND s.version >= p_version) THEN
    RAISE EXCEPTION 'snapshot of % at version %: the stream has no such '
                    'version', p_stream, p_version USING ERRCODE = 'ES004';
  END IF;
  INSERT INTO @SCHEMA@.snapshots AS s (stream_id, stream_version,
                                       state_version, data)
  VALUES (p_stream, p_version, p_state_version, p_data)
  ON CONFLICT (stream_id) DO UPDATE
    SET stream_version = excluded.stream_version,
        state_version = excluded.state_version, data = excluded.data,
        taken_at = now()
    WHERE s.stream_version < excluded.stream_version;
END
$$;

-- ------------------------------------------------ projection workers --

-- A worker registers its projection; the layout is set once (migration 6).
CREATE FUNCTION @SCHEMA@.projection_register(
  p_name text, p_version integer, p_partitions integer,
  p_categories text[], p_event_types text[],
  OUT partitions integer, OUT repartition_to integer)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO @SCHEMA@.projections AS p (name, version, partitions,
                                         categories, event_types)
  VALUES (p_name, p_version, p_partitions, p_categories, p_event_types)
  ON CONFLICT (name) DO UPDATE SET version = excluded.version,
    categories = excluded.categories, event_types = excluded.event_types,
    updated_at = now()
  RETURNING partitions, repartition_to;
$$;

CREATE FUNCTION @SCHEMA@.projection_rebuild_taken(p_name text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  UPDATE @SCHEMA@.projections SET rebuild_taken_at = now()
   WHERE name = p_name;
$$;

-- Only the pending change: a second switching worker changes nothing.
CREATE FUNCTION @SCHEMA@.projection_layout_switched(p_name text,
                                                    p_partitions integer)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  UPDATE @SCHEMA@.projections SET partitions = p_partitions,
         repartition_to = NULL, updated_at = now()
   WHERE name = p_name AND repartition_to = p_partitions;
$$;

-- Parks an event that failed, naming it as the log has it: the function
-- reads position, stream, version and type from the events table, so a
-- worker can park only an event that exists. One that retention removed
-- meanwhile needs no letter (a rebuild will not see it either): false.
CREATE FUNCTION @SCHEMA@.dead_letter_park(
  p_projection text, p_partition integer, p_event uuid, p_error text,
  p_attempts integer, p_commands_applied integer)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO @SCHEMA@.dead_letters AS d (projection, partition, tx_id,
    global_position, event_id, stream_id, stream_version, event_type, error,
    attempts, commands_applied)
  SELECT p_projection, p_partition, e.tx_id, e.global_position, e.event_id,
         e.stream_id, e.stream_version, e.event_type, p_error, p_attempts,
         p_commands_applied
    FROM @SCHEMA@.events e WHERE e.event_id = p_event
  ON CONFLICT (projection, event_id) WHERE state IN ('parked', 'retry')
  DO UPDATE SET error = excluded.error, attempts = excluded.attempts,
    parked_at = now(), commands_applied = excluded.commands_applied;
  RETURN FOUND;
END
$$;

-- A retried dead letter: resolved (p_ok) or parked again.
CREATE FUNCTION @SCHEMA@.dead_letter_finish(
  p_id bigint, p_ok boolean, p_error text, p_commands_applied integer)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  UPDATE @SCHEMA@.dead_letters SET state = 'resolved', resolved_at = now()
   WHERE id = p_id AND p_ok AND state <> 'resolved';
  UPDATE @SCHEMA@.dead_letters SET state = 'parked', error = p_error,
         attempts = attempts + 1, parked_at = now(),
         commands_applied = coalesce(p_commands_applied, commands_applied)
   WHERE id = p_id AND NOT p_ok AND state = 'retry';
$$;

-- ---------------------------------------------------------- privileges --

-- The helpers above without SET search_path (metadata_*, check_metadata,
-- notify_waiters) run only inside the SECURITY DEFINER functions, whose
-- path is pinned, and are granted to no one.

-- No table is written by the roles; functions run as the owner.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
  ON ALL TABLES IN SCHEMA @SCHEMA@ FROM @WRITER@, @READER@;
REVOKE ALL ON @SCHEMA@.waiters FROM @WRITER@, @READER@;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @SCHEMA@ FROM PUBLIC, @WRITER@,
  @READER@;
GRANT EXECUTE ON FUNCTION
  @SCHEMA@.append(text, bigint, uuid[], text[], integer[], bytea[], bytea[]),
  @SCHEMA@.append_fast(text, bigint, uuid[], text[], integer[], bytea[],
                       bytea[]),
  @SCHEMA@.append_fast1(text, bigint, uuid, text, integer, bytea, bytea),
  @SCHEMA@.snapshot_write(text, bigint, integer, bytea),
  @SCHEMA@.projection_register(text, integer, integer, text[], text[]),
  @SCHEMA@.projection_rebuild_taken(text),
  @SCHEMA@.projection_layout_switched(text, integer),
  @SCHEMA@.dead_letter_park(text, integer, uuid, text, integer, integer),
  @SCHEMA@.dead_letter_finish(bigint, boolean, text, integer)
  TO @WRITER@;
GRANT EXECUTE ON FUNCTION @SCHEMA@.wait_register(text),
  @SCHEMA@.wait_unregister(),
  @SCHEMA@.stream_order_inversions(bigint)
  TO @WRITER@, @READER@;
