-- esc event store, migration 1: the log, streams, roles, append, retention.
--
-- Placeholders are substituted by esc_store_migrate() with properly quoted
-- names, so one file serves any schema:
--   @SCHEMA@      the schema, as an identifier        (default "esc")
--   @WRITER@      the writer role, as an identifier   ("<schema>_writer")
--   @READER@      the reader role, as an identifier   ("<schema>_reader")
--   @WRITER_LIT@  @READER_LIT@  @CHANNEL_LIT@         the same, as literals

-- ---------------------------------------------------------------- roles --
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = @WRITER_LIT@) THEN
    CREATE ROLE @WRITER@ NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = @READER_LIT@) THEN
    CREATE ROLE @READER@ NOLOGIN;
  END IF;
END
$$;

-- --------------------------------------------------------------- tables --

-- One row per stream. Its row lock serializes the writers of that stream and
-- nothing else; version is the stream version of its last event (0: none).
CREATE TABLE @SCHEMA@.streams (
  stream_id        text PRIMARY KEY,
  version          bigint NOT NULL,
  truncated_before bigint NOT NULL DEFAULT 0,
  tombstoned       boolean NOT NULL DEFAULT false,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streams_category
  ON @SCHEMA@.streams ((split_part(stream_id, '-', 1)), stream_id);

-- The log. tx_id is the writing transaction's id: subscribers read only
-- below the oldest running transaction and order by (tx_id,
-- global_position), so a transaction that commits late is never skipped.
CREATE TABLE @SCHEMA@.events (
  global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_id       text NOT NULL,
  stream_version  bigint NOT NULL,
  event_id        uuid NOT NULL,
  event_type      text NOT NULL,
  schema_version  integer NOT NULL,
  data            bytea NOT NULL,
  metadata        bytea,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  tx_id           xid8 NOT NULL,
  CONSTRAINT events_event_id_key UNIQUE (event_id),
  CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);
-- A stream's category is split_part(stream_id, '-', 1): indexed as an
-- expression rather than stored, so rows stay narrow and updating a stream
-- row recomputes nothing.
CREATE INDEX events_subscription ON @SCHEMA@.events (tx_id, global_position);
CREATE INDEX events_category_subscription
  ON @SCHEMA@.events ((split_part(stream_id, '-', 1)), tx_id, global_position);

-- Readers that sleep until new events arrive. Appends notify only while a
-- waiter for their category (or for $all: category NULL) is registered, so
-- a busy system pays nothing for NOTIFY's commit-time lock. Unlogged: it is
-- soft state, rebuilt by readers as they wait.
CREATE UNLOGGED TABLE @SCHEMA@.waiters (
  pid      integer PRIMARY KEY,
  category text,
  since    timestamptz NOT NULL DEFAULT now()
);

-- Every retention operation, who did it and what it removed.
CREATE TABLE @SCHEMA@.retention_log (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_id      text NOT NULL,
  operation      text NOT NULL CHECK (operation IN ('truncate', 'tombstone')),
  before_version bigint,
  events_removed bigint NOT NULL,
  reason         text,
  performed_by   text NOT NULL DEFAULT current_user,
  performed_at   timestamptz NOT NULL DEFAULT now()
);

-- -------------------------------------------------------- immutability --

-- Events are never updated. Deletes happen only inside the retention
-- functions below, which set esc.retention for their own transaction.
CREATE FUNCTION @SCHEMA@.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('esc.retention', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'events are immutable: % on %.events refused',
    TG_OP, TG_TABLE_SCHEMA
    USING ERRCODE = 'ES001',
          HINT = 'use esc_stream_truncate or esc_stream_tombstone';
END
$$;

CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON @SCHEMA@.events
  FOR EACH ROW EXECUTE FUNCTION @SCHEMA@.refuse_event_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON @SCHEMA@.events
  FOR EACH STATEMENT EXECUTE FUNCTION @SCHEMA@.refuse_event_change();

-- --------------------------------------------------------------- append --

-- Appends events to one stream in one call. Returns one row:
--   status 0 appended, 1 duplicate (all ids stored already: the original
--   result), 2 conflict (actual_version says why), 3 stream tombstoned.
-- An id stored with other content raises SQLSTATE ES002; a partial overlap
-- fails on events_event_id_key. Either way nothing of the call is stored.
--
-- The hot path is one conditional UPDATE of the stream row, which takes its
-- lock, checks the expected version and bumps the version at once; the
-- idempotency probe then runs under that lock. Everything else (conflicts,
-- new streams, retries) is the cold path.
CREATE FUNCTION @SCHEMA@.append(
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
LANGUAGE plpgsql AS $$
DECLARE
  v_n     integer := cardinality(p_ids);
  v_base  bigint;   -- stream version before this append
  v_tomb  boolean;
BEGIN
  UPDATE @SCHEMA@.streams s
     SET version = s.version + v_n, updated_at = now()
   WHERE s.stream_id = p_stream AND NOT s.tombstoned
     AND (p_expected = -1
          OR (p_expected = -2 AND s.version = 0)
          OR (p_expected = -3 AND s.version > 0)
          OR (p_expected >= 0 AND s.version = p_expected))
  RETURNING s.version - v_n INTO v_base;

  IF FOUND THEN
    -- A retry whose first attempt committed while we waited for the lock.
    IF EXISTS (SELECT 1 FROM @SCHEMA@.events e WHERE e.event_id = p_ids[1])
    THEN
      UPDATE @SCHEMA@.streams s SET version = v_base
       WHERE s.stream_id = p_stream;
      SELECT * INTO status, first_version, last_version, tx_id, first_global,
                    last_global, actual_version
        FROM @SCHEMA@.stored_result(p_stream, p_ids, p_types,
                                    p_schema_versions, p_data, v_base);
      RETURN;
    END IF;
  ELSE
    SELECT s.version, s.tombstoned INTO v_base, v_tomb
      FROM @SCHEMA@.streams s WHERE s.stream_id = p_stream;
    IF EXISTS (SELECT 1 FROM @SCHEMA@.events e WHERE e.event_id = p_ids[1])
    THEN
      SELECT * INTO status, first_version, last_version, tx_id, first_global,
                    last_global, actual_version
        FROM @SCHEMA@.stored_result(p_stream, p_ids, p_types,
                                    p_schema_versions, p_data,
                                    coalesce(v_base, 0));
      RETURN;
    END IF;
    IF v_tomb THEN
      status := 3;
      actual_version := v_base;
      RETURN;
    END IF;
    IF v_base IS NOT NULL OR p_expected NOT IN (-1, -2, 0) THEN
      status := 2;
      actual_version := coalesce(v_base, 0);
      RETURN;
    END IF;
    -- A new stream. If a concurrent writer created it first, its creation
    -- is the conflict we would have seen under its lock.
    INSERT INTO @SCHEMA@.streams (stream_id, version) VALUES (p_stream, v_n)
      ON CONFLICT (stream_id) DO NOTHING;
    IF NOT FOUND THEN
      IF p_expected = -1 THEN
        SELECT * INTO status, first_version, last_version, tx_id,
                      first_global, last_global, actual_version
          FROM @SCHEMA@.append(p_stream, p_expected, p_ids, p_types,
                               p_schema_versions, p_data, p_metadata);
        RETURN;
      END IF;
      status := 2;
      SELECT s.version INTO actual_version
        FROM @SCHEMA@.streams s WHERE s.stream_id = p_stream;
      RETURN;
    END IF;
    v_base := 0;
  END IF;

  tx_id := pg_current_xact_id();
  WITH ins AS (
    INSERT INTO @SCHEMA@.events (stream_id, stream_version, event_id,
                                 event_type, schema_version, data, metadata,
                                 tx_id)
    SELECT p_stream, v_base + r.ord, r.id, r.type, r.sv, r.data, r.md, tx_id
      FROM unnest(p_ids, p_types, p_schema_versions, p_data, p_metadata)
             WITH ORDINALITY AS r(id, type, sv, data, md, ord)
     ORDER BY r.ord
    RETURNING global_position)
  SELECT min(global_position), max(global_position)
    INTO first_global, last_global FROM ins;

  IF EXISTS (SELECT 1 FROM @SCHEMA@.waiters w
              WHERE w.category IS NULL
                 OR w.category = split_part(p_stream, '-', 1)) THEN
    PERFORM pg_notify(@CHANNEL_LIT@, split_part(p_stream, '-', 1));
  END IF;

  status := 0;
  first_version := v_base + 1;
  last_version := v_base + v_n;
  actual_version := v_base + v_n;
END
$$;

-- The result of an append whose ids are all stored: the original versions
-- and positions (status 1), or ES002 when the stored events differ.
CREATE FUNCTION @SCHEMA@.stored_result(
  p_stream text, p_ids uuid[], p_types text[], p_schema_versions integer[],
  p_data bytea[], p_actual bigint,
  OUT status integer, OUT first_version bigint, OUT last_version bigint,
  OUT tx_id xid8, OUT first_global bigint, OUT last_global bigint,
  OUT actual_version bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_n        integer := cardinality(p_ids);
  v_first    bigint;
  v_matching integer;
BEGIN
  SELECT e.stream_version INTO v_first
    FROM @SCHEMA@.events e WHERE e.event_id = p_ids[1];
  SELECT count(*), max(e.tx_id), min(e.global_position),
         max(e.global_position)
    INTO v_matching, tx_id, first_global, last_global
    FROM unnest(p_ids, p_types, p_schema_versions, p_data)
           WITH ORDINALITY AS r(id, type, sv, data, ord)
    JOIN @SCHEMA@.events e ON e.event_id = r.id
   WHERE e.stream_id = p_stream
     AND e.stream_version = v_first + r.ord - 1
     AND e.event_type = r.type AND e.schema_version = r.sv
     AND e.data = r.data;
  IF v_matching <> v_n THEN
    RAISE EXCEPTION 'event id % is stored already with other content, '
      'in another stream or in another order', p_ids[1]
      USING ERRCODE = 'ES002';
  END IF;
  status := 1;
  first_version := v_first;
  last_version := v_first + v_n - 1;
  actual_version := p_actual;
END
$$;

-- ------------------------------------------------------------ waiting --

-- Registers the calling session as waiting for events of p_category (NULL:
-- $all), dropping registrations of sessions that are gone.
CREATE FUNCTION @SCHEMA@.wait_register(p_category text) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM @SCHEMA@.waiters w
   WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid);
  INSERT INTO @SCHEMA@.waiters (pid, category)
  VALUES (pg_backend_pid(), p_category)
  ON CONFLICT (pid) DO UPDATE SET category = excluded.category, since = now();
$$;

CREATE FUNCTION @SCHEMA@.wait_unregister() RETURNS void
LANGUAGE sql AS $$
  DELETE FROM @SCHEMA@.waiters WHERE pid = pg_backend_pid();
$$;

-- ------------------------------------------------------------ retention --

CREATE FUNCTION @SCHEMA@.truncate_stream(p_stream text, p_before bigint,
                                         p_reason text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_removed bigint;
BEGIN
  PERFORM 1 FROM @SCHEMA@.streams WHERE stream_id = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream % does not exist', p_stream USING ERRCODE = 'ES004';
  END IF;
  PERFORM set_config('esc.retention', 'on', true);
  DELETE FROM @SCHEMA@.events
   WHERE stream_id = p_stream AND stream_version < p_before;
  GET DIAGNOSTICS v_removed = ROW_COUNT;
  PERFORM set_config('esc.retention', 'off', true);
  UPDATE @SCHEMA@.streams
     SET truncated_before = greatest(truncated_before,
                                     least(p_before, version + 1)),
         updated_at = now()
   WHERE stream_id = p_stream;
  INSERT INTO @SCHEMA@.retention_log (stream_id, operation, before_version,
                                      events_removed, reason)
  VALUES (p_stream, 'truncate', p_before, v_removed, p_reason);
  RETURN v_removed;
END
$$;

CREATE FUNCTION @SCHEMA@.tombstone_stream(p_stream text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_removed bigint;
BEGIN
  PERFORM 1 FROM @SCHEMA@.streams WHERE stream_id = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream % does not exist', p_stream USING ERRCODE = 'ES004';
  END IF;
  PERFORM set_config('esc.retention', 'on', true);
  DELETE FROM @SCHEMA@.events WHERE stream_id = p_stream;
  GET DIAGNOSTICS v_removed = ROW_COUNT;
  PERFORM set_config('esc.retention', 'off', true);
  UPDATE @SCHEMA@.streams SET tombstoned = true, updated_at = now()
   WHERE stream_id = p_stream;
  INSERT INTO @SCHEMA@.retention_log (stream_id, operation, events_removed,
                                      reason)
  VALUES (p_stream, 'tombstone', v_removed, p_reason);
  RETURN v_removed;
END
$$;

-- ----------------------------------------------------------- privileges --

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @SCHEMA@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @SCHEMA@ TO @WRITER@, @READER@;
GRANT SELECT ON @SCHEMA@.events, @SCHEMA@.streams, @SCHEMA@.retention_log
  TO @WRITER@, @READER@;
-- The writer inserts; it has no UPDATE or DELETE on events, and the trigger
-- refuses both even to the owner.
GRANT INSERT ON @SCHEMA@.events TO @WRITER@;
GRANT INSERT, UPDATE ON @SCHEMA@.streams TO @WRITER@;
GRANT SELECT, INSERT, UPDATE, DELETE ON @SCHEMA@.waiters TO @WRITER@, @READER@;
GRANT EXECUTE ON FUNCTION @SCHEMA@.append(text, bigint, uuid[], text[],
  integer[], bytea[], bytea[]),
  @SCHEMA@.stored_result(text, uuid[], text[], integer[], bytea[], bigint)
  TO @WRITER@;
GRANT EXECUTE ON FUNCTION @SCHEMA@.wait_register(text),
  @SCHEMA@.wait_unregister() TO @WRITER@, @READER@;
GRANT EXECUTE ON FUNCTION @SCHEMA@.refuse_event_change() TO @WRITER@;
