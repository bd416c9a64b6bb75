-- esc event store, migration 7: how much of a parked event took effect.
--
-- A projection's commands run in Redis, which has no rollback: when one of
-- an event's commands fails there (WRONGTYPE, an INCRBY that overflows),
-- the ones before it stay applied. The event is parked with how many did,
-- so that `esc dead-letters retry` runs only the rest and nothing is
-- applied twice. 0 for an event whose handler failed (nothing was sent).
-- Numbered 7: 6 is taken by the partition layouts of another branch.
ALTER TABLE @SCHEMA@.dead_letters
  ADD COLUMN commands_applied integer NOT NULL DEFAULT 0
  CHECK (commands_applied >= 0);
