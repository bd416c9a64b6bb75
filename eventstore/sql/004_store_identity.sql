-- esc event store, migration 4: the store's identity.
--
-- A random id made once, when the store is created. Projection workers mark
-- a projection's Redis keys with it, so two stores sharing one Redis
-- database (or a store dropped and created again while Redis kept the old
-- read models) cannot write into each other's keys: the checkpoints there
-- are positions of another log.
CREATE TABLE @SCHEMA@.identity (
  id         uuid NOT NULL DEFAULT gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now(),
  only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row)
);
INSERT INTO @SCHEMA@.identity DEFAULT VALUES;

GRANT SELECT ON @SCHEMA@.identity TO @WRITER@, @READER@;
