-- esc event store, migration 3: what projection workers run, and the
-- events their handlers gave up on.
--
-- The read models themselves live in Redis; these two tables are the part of
-- a projection's state that must survive Redis and that operators act on
-- (`esc projections`, `esc rebuild`, `esc dead-letters`). Placeholders as in
-- 001_events.sql.

-- ---------------------------------------------------------- projections --

-- One row per projection, written by every worker that runs it on start
-- (esc_worker_add). `esc rebuild NAME` sets rebuild_requested_at; a worker
-- that starts the rebuild sets rebuild_taken_at, so a request is pending
-- while requested_at is later than taken_at (or taken_at is NULL).
CREATE TABLE @SCHEMA@.projections (
  name                 text PRIMARY KEY,
  version              integer NOT NULL CHECK (version >= 1),
  partitions           integer NOT NULL CHECK (partitions >= 1),
  categories           text[],  -- NULL: every category
  event_types          text[],  -- NULL: every type
  rebuild_requested_at timestamptz,
  rebuild_taken_at     timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- --------------------------------------------------------- dead letters --

-- An event a projection's handler kept failing on, parked so the partition
-- could move on. Never deleted: a letter ends resolved (a retry applied it)
-- or discarded (an operator gave up on it). tx_id and global_position are
-- the event's position token; the event itself stays in the log.
--   parked    -> retry      esc dead-letters retry ID
--   retry     -> resolved   the worker applied it
--   retry     -> parked     the worker failed again (new error, attempts+1)
--   parked, retry -> discarded   esc dead-letters discard ID
CREATE TABLE @SCHEMA@.dead_letters (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  projection      text NOT NULL,
  partition       integer NOT NULL,
  tx_id           xid8 NOT NULL,
  global_position bigint NOT NULL,
  event_id        uuid NOT NULL,
  stream_id       text NOT NULL,
  stream_version  bigint NOT NULL,
  event_type      text NOT NULL,
  error           text NOT NULL,
  attempts        integer NOT NULL,
  parked_at       timestamptz NOT NULL DEFAULT now(),
  state           text NOT NULL DEFAULT 'parked'
                  CHECK (state IN ('parked', 'retry', 'resolved',
                                   'discarded')),
  resolved_at     timestamptz
);
-- What workers (retries of a partition) and `esc projections` (open letters
-- per partition) look up.
CREATE INDEX dead_letters_partition_state
  ON @SCHEMA@.dead_letters (projection, partition, state);
-- At most one open letter per event and projection: a worker that parks an
-- event and dies before its checkpoint moves past it parks it again on
-- restart, which then updates the open letter instead of adding a second.
CREATE UNIQUE INDEX dead_letters_open_event
  ON @SCHEMA@.dead_letters (projection, event_id)
  WHERE state IN ('parked', 'retry');

-- ----------------------------------------------------------- privileges --

-- Workers run as the writer: they register projections, take rebuild
-- requests and park and resolve letters. The CLI's requests and
-- retry/discard are updates too. Readers may look.
GRANT SELECT, INSERT, UPDATE ON @SCHEMA@.projections, @SCHEMA@.dead_letters
  TO @WRITER@;
GRANT SELECT ON @SCHEMA@.projections, @SCHEMA@.dead_letters TO @READER@;
