-- esc event store, migration 23: the metadata check plans no query per
-- call.
--
-- is_uuid_text (migration 12) was STRICT, and its body is an AND, which
-- is not strict (false AND NULL is false). PostgreSQL inlines a STRICT
-- SQL function only into a strict body, so each call of is_uuid_text ran
-- as a function of its own, parsed and planned afresh in every
-- transaction: about 40 us of server CPU for each of the two ids in the
-- metadata esc writes, a fifth of a one-event append. Declared not
-- strict, with NULL mapped to false explicitly, it is inlined into the
-- expressions of metadata_canonical and metadata_valid and costs what
-- its regular expression costs. What it accepts is unchanged.
CREATE OR REPLACE FUNCTION @SCHEMA@.is_uuid_text(b bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(length(b) = 36 AND encode(b, 'escape') ~
    '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
    false)
$$;
