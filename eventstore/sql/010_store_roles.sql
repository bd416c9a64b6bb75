-- esc event store, migration 10: the store's roles are recorded.
--
-- PostgreSQL roles belong to the whole cluster. Stores made before this
-- migration have roles named from the schema alone (<schema>_writer), so
-- two databases with a schema of the same name shared them: the writer of
-- one could append in the other. New stores get roles named from database
-- and schema, or as `esc migrate --writer-role/--reader-role` says, and
-- `esc migrate` refuses a role that already holds rights elsewhere unless
-- told to share it. Whatever the names, they are kept here, so every later
-- migration grants to the same roles (docs/security.md).
CREATE TABLE @SCHEMA@.store_roles (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  writer   name NOT NULL,
  reader   name NOT NULL
);
INSERT INTO @SCHEMA@.store_roles (writer, reader)
VALUES (@WRITER_LIT@, @READER_LIT@);
GRANT SELECT ON @SCHEMA@.store_roles TO @WRITER@, @READER@;
