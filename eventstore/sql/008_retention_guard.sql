-- esc event store, migration 8: retention cannot be bypassed.
--
-- Deleting events used to need only the session setting esc.retention =
-- 'on', which the retention functions set for their transaction but which
-- any owner session could set too: `SET esc.retention = 'on'; DELETE ...`
-- removed events and left no record. Now a delete passes the immutability
-- trigger only when this very transaction has recorded it in the
-- retention log first: the stream, and for a truncation the version
-- before which events go. The retention functions write that record
-- (who, what, why, when) and then fill in how many events went; a
-- session setting alone lets nothing through, and whoever writes a record
-- by hand leaves it in the log.

ALTER TABLE @SCHEMA@.retention_log
  ADD COLUMN tx_id xid8,                       -- the deleting transaction
  ADD COLUMN session_login text NOT NULL DEFAULT session_user;
-- `esc check --repair` rewrites a stream's rows in version order (migration
-- 5): a delete of the whole stream and a re-insert, logged here too.
ALTER TABLE @SCHEMA@.retention_log
  DROP CONSTRAINT retention_log_operation_check,
  ADD CONSTRAINT retention_log_operation_check
    CHECK (operation IN ('truncate', 'tombstone', 'repair'));
CREATE INDEX retention_log_tx ON @SCHEMA@.retention_log (tx_id, stream_id)
  WHERE tx_id IS NOT NULL;

CREATE OR REPLACE FUNCTION @SCHEMA@.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND EXISTS (
       SELECT 1 FROM @SCHEMA@.retention_log r
        WHERE r.tx_id = pg_current_xact_id()
          AND r.stream_id = OLD.stream_id
          AND (r.operation IN ('tombstone', 'repair')
               OR OLD.stream_version < r.before_version)) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'events are immutable: % on %.events refused',
    TG_OP, TG_TABLE_SCHEMA
    USING ERRCODE = 'ES001',
          HINT = 'use esc_stream_truncate or esc_stream_tombstone: deletions '
                 'go through the retention functions and their log';
END
$$;

-- The log is a record: rows are added, and only the count of the
-- transaction's own row is filled in afterwards.
CREATE FUNCTION @SCHEMA@.refuse_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.tx_id = pg_current_xact_id()
     AND NEW.id = OLD.id AND NEW.stream_id = OLD.stream_id
     AND NEW.operation = OLD.operation
     AND NEW.before_version IS NOT DISTINCT FROM OLD.before_version
     AND NEW.tx_id = OLD.tx_id THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the retention log is append-only: % on %.retention_log '
                  'refused', TG_OP, TG_TABLE_SCHEMA
    USING ERRCODE = 'ES001';
END
$$;

CREATE TRIGGER retention_log_append_only
  BEFORE UPDATE OR DELETE ON @SCHEMA@.retention_log
  FOR EACH ROW EXECUTE FUNCTION @SCHEMA@.refuse_log_change();
CREATE TRIGGER retention_log_no_truncate BEFORE TRUNCATE ON @SCHEMA@.retention_log
  FOR EACH STATEMENT EXECUTE FUNCTION @SCHEMA@.refuse_log_change();

CREATE OR REPLACE FUNCTION @SCHEMA@.truncate_stream(p_stream text,
                                                    p_before bigint,
                                                    p_reason text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_removed bigint;
  v_log bigint;
BEGIN
  PERFORM 1 FROM @SCHEMA@.streams WHERE stream_id = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream % does not exist', p_stream USING ERRCODE = 'ES004';
  END IF;
  INSERT INTO @SCHEMA@.retention_log (stream_id, operation, before_version,
                                      events_removed, reason, tx_id)
  VALUES (p_stream, 'truncate', p_before, 0, p_reason, pg_current_xact_id())
  RETURNING id INTO v_log;
  DELETE FROM @SCHEMA@.events
   WHERE stream_id = p_stream AND stream_version < p_before;
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

CREATE OR REPLACE FUNCTION @SCHEMA@.tombstone_stream(p_stream text,
                                                     p_reason text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_removed bigint;
  v_log bigint;
BEGIN
  PERFORM 1 FROM @SCHEMA@.streams WHERE stream_id = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream % does not exist', p_stream USING ERRCODE = 'ES004';
  END IF;
  INSERT INTO @SCHEMA@.retention_log (stream_id, operation, events_removed,
                                      reason, tx_id)
  VALUES (p_stream, 'tombstone', 0, p_reason, pg_current_xact_id())
  RETURNING id INTO v_log;
  DELETE FROM @SCHEMA@.events WHERE stream_id = p_stream;
  GET DIAGNOSTICS v_removed = ROW_COUNT;
  UPDATE @SCHEMA@.retention_log SET events_removed = v_removed
   WHERE id = v_log;
  UPDATE @SCHEMA@.streams SET tombstoned = true, updated_at = now()
   WHERE stream_id = p_stream;
  RETURN v_removed;
END
$$;

CREATE OR REPLACE FUNCTION @SCHEMA@.repair_stream_order(p_stream text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_moved bigint;
BEGIN
  PERFORM 1 FROM @SCHEMA@.streams WHERE stream_id = p_stream FOR UPDATE;
  CREATE TEMP TABLE esc_repair ON COMMIT DROP AS
  SELECT v.*, p.tx_id AS new_tx, p.global_position AS new_global
    FROM (SELECT e.*, row_number() OVER (ORDER BY e.stream_version) AS k
            FROM @SCHEMA@.events e WHERE e.stream_id = p_stream) v
    JOIN (SELECT e.tx_id, e.global_position,
                 row_number() OVER (ORDER BY e.tx_id, e.global_position) AS k
            FROM @SCHEMA@.events e WHERE e.stream_id = p_stream) p
      ON p.k = v.k;
  SELECT count(*) INTO v_moved FROM esc_repair
   WHERE global_position <> new_global;
  IF v_moved > 0 THEN
    -- The rows go and come back with the same events: logged as a repair
    -- (events_removed 0), which is also what lets the delete through.
    INSERT INTO @SCHEMA@.retention_log (stream_id, operation, events_removed,
                                        reason, tx_id)
    VALUES (p_stream, 'repair', 0,
            format('%s events put back in version order', v_moved),
            pg_current_xact_id());
    DELETE FROM @SCHEMA@.events WHERE stream_id = p_stream;
    INSERT INTO @SCHEMA@.events
      (global_position, stream_id, stream_version, event_id, event_type,
       schema_version, data, metadata, recorded_at, tx_id)
      OVERRIDING SYSTEM VALUE
    SELECT new_global, stream_id, stream_version, event_id, event_type,
           schema_version, data, metadata, recorded_at, new_tx
      FROM esc_repair;
    INSERT INTO @SCHEMA@.order_repairs (stream_id, events_moved)
    VALUES (p_stream, v_moved);
  END IF;
  DROP TABLE esc_repair;
  RETURN v_moved;
END
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @SCHEMA@ FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @SCHEMA@.refuse_event_change() TO @WRITER@;
