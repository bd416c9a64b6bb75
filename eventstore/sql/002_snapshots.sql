-- esc event store, migration 2: snapshots of folded stream state.
--
-- A snapshot is a cache beside the log, never part of it: one row per
-- stream, replaced by newer ones, droppable at any time.
CREATE TABLE @SCHEMA@.snapshots (
  stream_id      text PRIMARY KEY,
  stream_version bigint NOT NULL,
  state_version  integer NOT NULL,
  data           bytea NOT NULL,
  taken_at       timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON @SCHEMA@.snapshots TO @WRITER@, @READER@;
GRANT INSERT, UPDATE, DELETE ON @SCHEMA@.snapshots TO @WRITER@;
