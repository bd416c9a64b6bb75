-- esc event store, migration 6: a projection's partition layout belongs to
-- the store.
--
-- projections.partitions used to be overwritten by every worker that
-- registered, so two workers configured with different counts took turns
-- at it and both applied into the same Redis generation. From now on the
-- first registration sets it and only a repartition changes it (docs/
-- decisions/0012-partition-layout.md): a worker with another count refuses
-- to run the projection.
--
-- `esc projections repartition NAME N` sets repartition_to (and requests a
-- rebuild); workers with N partitions build a new generation with that
-- layout while the old one serves, and the switch sets partitions = N and
-- repartition_to back to NULL. An existing store keeps the count its last
-- registration wrote; where Redis serves a generation of another count,
-- workers of the recorded one rebuild it (nothing else changes here).
ALTER TABLE @SCHEMA@.projections
  ADD COLUMN repartition_to integer CHECK (repartition_to >= 1);
