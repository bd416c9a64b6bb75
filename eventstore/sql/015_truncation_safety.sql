-- esc event store, migration 15: truncation never produces a wrong state.
--
-- Once a stream is truncated, its snapshot is the only record of the
-- events that went, and the removed event ids were the only record of
-- which commands had run. So:
--   * snapshots are logged (durable): a crash no longer empties them;
--   * a truncation is refused unless a snapshot covers every version it
--     removes (or the caller forces it); loading a stream whose log does
--     not start at version 1 without such a snapshot is an error in the
--     command layer, never a fold of the tail alone;
--   * the ids and positions of removed events are kept, so a retried
--     command (event ids are derived from its id) still finds the result
--     of its first execution;
--   * commands that appended nothing (rejected, or deciding no change)
--     are recorded, so a retry returns the same outcome instead of being
--     decided again on a state that has moved on.
-- It comes after migration 12, which made every write of the writer a
-- SECURITY DEFINER function with a pinned search_path and revoked every
-- other function grant; the functions here follow that rule and are
-- granted below. See docs/decisions/0015-truncation-and-snapshots.md.

ALTER TABLE @SCHEMA@.snapshots SET LOGGED;

-- The events truncation removed, without their payloads.
CREATE TABLE @SCHEMA@.removed_event_ids (
  event_id        uuid PRIMARY KEY,
  stream_id       text NOT NULL,
  stream_version  bigint NOT NULL,
  global_position bigint NOT NULL,
  tx_id           xid8 NOT NULL,
  removed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX removed_event_ids_stream
  ON @SCHEMA@.removed_event_ids (stream_id, stream_version);

-- Commands that stored no events: domain_code > 0 rejected (with its
-- message), 0 decided no change. The first outcome recorded stays.
CREATE TABLE @SCHEMA@.command_outcomes (
  command_id     uuid PRIMARY KEY,
  stream_id      text NOT NULL,
  stream_version bigint NOT NULL,  -- the version it was decided at
  domain_code    integer NOT NULL CHECK (domain_code >= 0),
  domain_msg     text NOT NULL CHECK (octet_length(domain_msg) <= 1024),
  recorded_at    timestamptz NOT NULL DEFAULT now()
);

-- Records a command that stored no events, decided on the stream at
-- p_version. The writer calls this rather than inserting, so it can hold
-- no INSERT right on the table. Returns 'recorded'; 'kept' when an
-- outcome of the command was recorded before (the first one stays); or
-- 'moved', recording nothing, when the stream is no longer at p_version.
-- That last check, under a share lock on the stream row (appends hold it
-- for update), makes the outcome one of the stream at that version: a
-- twin of the command that appends after it decided on the same state,
-- and the caller of a 'moved' one decides again on the new state.
CREATE FUNCTION @SCHEMA@.record_command_outcome(p_command uuid,
                                                p_stream text,
                                                p_version bigint,
                                                p_code integer,
                                                p_msg text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_version bigint;
BEGIN
  IF p_command IS NULL OR p_stream IS NULL OR p_version IS NULL
     OR p_version < 0 OR p_code IS NULL OR p_code < 0 OR p_msg IS NULL
     OR octet_length(p_stream) > 200 OR octet_length(p_msg) > 1024 THEN
    RAISE EXCEPTION 'record_command_outcome: invalid arguments'
      USING ERRCODE = '22023';
  END IF;
  SELECT s.version INTO v_version FROM @SCHEMA@.streams s
   WHERE s.stream_id = p_stream FOR SHARE;
  IF coalesce(v_version, 0) <> p_version THEN
    RETURN 'moved';
  END IF;
  INSERT INTO @SCHEMA@.command_outcomes
    (command_id, stream_id, stream_version, domain_code, domain_msg)
  VALUES (p_command, p_stream, p_version, p_code, p_msg)
  ON CONFLICT (command_id) DO NOTHING;
  RETURN CASE WHEN FOUND THEN 'recorded' ELSE 'kept' END;
END
$$;

-- What an earlier execution of a command did: 'appended' (its first
-- event, p_first_event, is stored or was removed by truncation), or the
-- recorded outcome of one that stored nothing. No row: never executed.
CREATE FUNCTION @SCHEMA@.command_outcome(p_command uuid, p_first_event uuid,
                                         OUT kind text,
                                         OUT stream_id text,
                                         OUT stream_version bigint,
                                         OUT domain_code integer,
                                         OUT domain_msg text)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM (
    SELECT 'appended', e.stream_id, e.stream_version, 0, ''
      FROM @SCHEMA@.events e WHERE e.event_id = p_first_event
    UNION ALL
    SELECT 'appended', r.stream_id, r.stream_version, 0, ''
      FROM @SCHEMA@.removed_event_ids r WHERE r.event_id = p_first_event
    UNION ALL
    SELECT 'recorded', c.stream_id, c.stream_version, c.domain_code,
           c.domain_msg
      FROM @SCHEMA@.command_outcomes c WHERE c.command_id = p_command) o
  ORDER BY 1 LIMIT 1  -- 'appended' first: events are the truth
$$;

-- The ids and positions of a stream's events from version p_from on, the
-- ones truncation removed included, in version order.
CREATE FUNCTION @SCHEMA@.stream_event_ids(p_stream text, p_from bigint,
                                          p_max bigint,
                                          OUT event_id uuid,
                                          OUT stream_version bigint,
                                          OUT tx_id xid8,
                                          OUT global_position bigint)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM (
    SELECT e.event_id, e.stream_version, e.tx_id, e.global_position
      FROM @SCHEMA@.events e
     WHERE e.stream_id = p_stream AND e.stream_version >= p_from
    UNION ALL
    SELECT r.event_id, r.stream_version, r.tx_id, r.global_position
      FROM @SCHEMA@.removed_event_ids r
     WHERE r.stream_id = p_stream AND r.stream_version >= p_from) ids
  ORDER BY stream_version LIMIT p_max
$$;

-- What truncating p_stream before p_before would leave uncovered: the
-- last version it removes, when it removes versions not already gone and
-- the stream's snapshot is older than that version; NULL when nothing
-- would be uncovered (or the stream does not exist). The one statement
-- of the rule: truncate_stream refuses on it, and a retention run plans
-- with it (esc_retention_run). A snapshot's presence is all SQL can
-- check; whether its state_version suits the decider is the loader's
-- question, and an unusable one is ESC_ETRUNCATED there.
CREATE FUNCTION @SCHEMA@.truncation_uncovered(p_stream text, p_before bigint)
RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT u.upto FROM (
    SELECT least(p_before, s.version + 1) - 1 AS upto,
           greatest(s.truncated_before, 1) AS first_kept,
           (SELECT n.stream_version FROM @SCHEMA@.snapshots n
             WHERE n.stream_id = s.stream_id) AS snapshot
      FROM @SCHEMA@.streams s WHERE s.stream_id = p_stream) u
   WHERE u.upto >= u.first_kept AND coalesce(u.snapshot, 0) < u.upto
$$;

-- Truncation: refused (SQLSTATE ES009) when it would remove versions that
-- no snapshot covers, unless p_force. The removed events' ids are kept.
CREATE FUNCTION @SCHEMA@.truncate_stream(p_stream text, p_before bigint,
                                         p_reason text, p_force boolean)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_removed bigint;
  v_log bigint;
  v_upto bigint;    -- the last version left uncovered; NULL: none
  v_snapshot bigint;
BEGIN
  PERFORM 1 FROM @SCHEMA@.streams WHERE stream_id = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream % does not exist', p_stream USING ERRCODE = 'ES004';
  END IF;
  v_upto := @SCHEMA@.truncation_uncovered(p_stream, p_before);
  SELECT s.stream_version INTO v_snapshot
    FROM @SCHEMA@.snapshots s WHERE s.stream_id = p_stream;
  IF NOT coalesce(p_force, false) AND v_upto IS NOT NULL THEN
    RAISE EXCEPTION 'truncate %: no snapshot covers version % (%)', p_stream,
      v_upto, coalesce('the snapshot is at version ' || v_snapshot,
                       'the stream has no snapshot')
      USING ERRCODE = 'ES009',
            HINT = 'take a snapshot first (esc_truncate_stream with the '
                   'decider does), or force it: the stream''s state can '
                   'then not be loaded any more';
  END IF;
  INSERT INTO @SCHEMA@.retention_log (stream_id, operation, before_version,
                                      events_removed, reason, tx_id)
  VALUES (p_stream, 'truncate', p_before, 0,
          CASE WHEN v_upto IS NOT NULL THEN '[forced] ' ELSE '' END
            || coalesce(p_reason, ''),
          pg_current_xact_id())
  RETURNING id INTO v_log;
  -- One pass: what the DELETE removes is what is kept as removed.
  WITH gone AS (
    DELETE FROM @SCHEMA@.events
     WHERE stream_id = p_stream AND stream_version < p_before
    RETURNING event_id, stream_id, stream_version, global_position, tx_id)
  INSERT INTO @SCHEMA@.removed_event_ids
    (event_id, stream_id, stream_version, global_position, tx_id)
  SELECT * FROM gone;
  GET DIAGNOSTICS v_removed = ROW_COUNT;
  UPDATE @SCHEMA@.retention_log SET events_removed = v_removed
   WHERE id = v_log;
  UPDATE @SCHEMA@.streams
     SET truncated_before = greatest(truncated_before,
                                     least(p_before, version + 1)),
         updated_at = now()
   WHERE stream_id = p_stream;
  RETURN v_removed;
END
$$;

-- The three-argument form (migration 8) is the safe one: never forced.
CREATE OR REPLACE FUNCTION @SCHEMA@.truncate_stream(p_stream text,
                                                    p_before bigint,
                                                    p_reason text)
RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT @SCHEMA@.truncate_stream(p_stream, p_before, p_reason, false)
$$;

-- Only the owner truncates; the writer reads and records outcomes
-- through these functions and holds no right on the tables.
REVOKE ALL ON @SCHEMA@.removed_event_ids, @SCHEMA@.command_outcomes
  FROM PUBLIC, @WRITER@, @READER@;
REVOKE ALL ON FUNCTION
  @SCHEMA@.record_command_outcome(uuid, text, bigint, integer, text),
  @SCHEMA@.command_outcome(uuid, uuid),
  @SCHEMA@.stream_event_ids(text, bigint, bigint),
  @SCHEMA@.truncation_uncovered(text, bigint),
  @SCHEMA@.truncate_stream(text, bigint, text, boolean),
  @SCHEMA@.truncate_stream(text, bigint, text)
  FROM PUBLIC, @WRITER@, @READER@;
GRANT EXECUTE ON FUNCTION
  @SCHEMA@.record_command_outcome(uuid, text, bigint, integer, text),
  @SCHEMA@.command_outcome(uuid, uuid),
  @SCHEMA@.stream_event_ids(text, bigint, bigint)
  TO @WRITER@;
