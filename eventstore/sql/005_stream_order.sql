-- esc event store, migration 5: subscription order follows stream order.
--
-- Subscribers read in (tx_id, global_position) order. PostgreSQL gives a
-- transaction its id at its first row change or row lock, and an UPDATE or
-- SELECT FOR UPDATE of the stream row takes the id *before* it waits for
-- that row. So a writer that waited behind another got the next version but
-- could hold the lower transaction id: version k+1 reached subscribers
-- before version k. An advisory lock on the stream, taken before anything
-- that needs a transaction id, makes the waiting happen first: the id is
-- assigned only once the previous writer of the stream has committed, so
-- it is higher than that writer's. The key is a 63-bit hash of the stream
-- id seeded by the store's channel, in the two-integer key space that
-- esc's own session locks (leases, migrations) do not use; two streams
-- share a key only by a hash collision, which costs them some waiting and
-- never correctness. See docs/decisions/0010-stream-lock-before-xid.md.

CREATE FUNCTION @SCHEMA@.lock_stream(p_stream text) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(
           (hashtextextended(p_stream, hashtext(@CHANNEL_LIT@)) >> 32)::int4,
           (hashtextextended(p_stream, hashtext(@CHANNEL_LIT@))
              & 2147483647)::int4);
$$;

-- The append function of migration 1 becomes the body; append() locks the
-- stream first. Grants stay with the renamed function.
ALTER FUNCTION @SCHEMA@.append(text, bigint, uuid[], text[], integer[],
                               bytea[], bytea[])
  RENAME TO append_locked;

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
LANGUAGE sql AS $$
  SELECT @SCHEMA@.lock_stream(p_stream);
  SELECT * FROM @SCHEMA@.append_locked(p_stream, p_expected, p_ids, p_types,
                                       p_schema_versions, p_data, p_metadata);
$$;

-- ------------------------------------------------ finding old inversions --

-- Each event whose predecessor in its stream comes after it in
-- subscription order: what appends before this migration could leave.
CREATE FUNCTION @SCHEMA@.stream_order_inversions(p_limit bigint)
RETURNS TABLE (stream_id text, stream_version bigint, tx_id xid8,
               global_position bigint, prev_tx_id xid8, prev_global bigint)
LANGUAGE sql STABLE AS $$
  SELECT w.stream_id, w.stream_version, w.tx_id, w.global_position,
         w.prev_tx, w.prev_global
    FROM (SELECT e.stream_id, e.stream_version, e.tx_id, e.global_position,
                 lag(e.tx_id) OVER s AS prev_tx,
                 lag(e.global_position) OVER s AS prev_global
            FROM @SCHEMA@.events e
          WINDOW s AS (PARTITION BY e.stream_id ORDER BY e.stream_version))
         AS w
   WHERE (w.prev_tx, w.prev_global) > (w.tx_id, w.global_position)
   ORDER BY w.stream_id, w.stream_version
   LIMIT p_limit;
$$;

-- What the last check found, so workers can refuse to replay a log whose
-- order they would apply wrongly without scanning it themselves. Filled
-- here for the log as it stands and by every `esc check`.
CREATE TABLE @SCHEMA@.order_check (
  only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  inversions  bigint NOT NULL,
  streams     bigint NOT NULL,
  checked_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION @SCHEMA@.record_order_check() RETURNS @SCHEMA@.order_check
LANGUAGE sql AS $$
  INSERT INTO @SCHEMA@.order_check (inversions, streams)
  SELECT count(*), count(DISTINCT i.stream_id)
    FROM @SCHEMA@.stream_order_inversions(NULL) i
  ON CONFLICT (only_row) DO UPDATE
    SET inversions = excluded.inversions, streams = excluded.streams,
        checked_at = now()
  RETURNING *;
$$;

SELECT @SCHEMA@.record_order_check();

-- ------------------------------------------------------------ repairing --

-- Every repair, who did it and how many events moved.
CREATE TABLE @SCHEMA@.order_repairs (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_id    text NOT NULL,
  events_moved bigint NOT NULL,
  performed_by text NOT NULL DEFAULT current_user,
  performed_at timestamptz NOT NULL DEFAULT now()
);

-- Puts one stream's events back in version order within the positions its
-- events already occupy: the stream keeps the same set of (tx_id,
-- global_position) pairs, and the k-th lowest goes to version k. Nothing
-- else in the log moves, so other streams and checkpoints before the first
-- moved position stay exact; a projection past it must be rebuilt (its
-- read model was built out of order anyway). Returns the events moved.
CREATE FUNCTION @SCHEMA@.repair_stream_order(p_stream text) RETURNS bigint
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
    PERFORM set_config('esc.retention', 'on', true);
    DELETE FROM @SCHEMA@.events WHERE stream_id = p_stream;
    PERFORM set_config('esc.retention', 'off', true);
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
GRANT EXECUTE ON FUNCTION @SCHEMA@.lock_stream(text) TO @WRITER@;
GRANT EXECUTE ON FUNCTION @SCHEMA@.append(text, bigint, uuid[], text[],
  integer[], bytea[], bytea[]) TO @WRITER@;
GRANT EXECUTE ON FUNCTION @SCHEMA@.stream_order_inversions(bigint)
  TO @WRITER@, @READER@;
GRANT SELECT ON @SCHEMA@.order_check, @SCHEMA@.order_repairs
  TO @WRITER@, @READER@;
