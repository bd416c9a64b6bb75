-- esc event store, migration 2: snapshots of folded stream state.
--
-- A snapshot is a cache beside the log, never part of it: one row per
-- stream, replaced by newer ones, droppable at any time. Unlogged: writing
-- one costs no WAL and no fsync, and after a crash PostgreSQL empties the
-- table, which only means the next loads replay their streams.
CREATE UNLOGGED TABLE @SCHEMA@.snapshots (
  stream_id      text PRIMARY KEY,
  stream_version bigint NOT NULL,
  state_version  integer NOT NULL,
  data           bytea NOT NULL,
  taken_at       timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON @SCHEMA@.snapshots TO @WRITER@, @READER@;
GRANT INSERT, UPDATE, DELETE ON @SCHEMA@.snapshots TO @WRITER@;
