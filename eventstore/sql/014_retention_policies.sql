-- esc event store, migration 14: retention policies.
--
-- Like EventStoreDB's $maxAge / $maxCount, a policy says how long (max_age_s)
-- and how many (max_count) events a stream keeps. It targets one stream or
-- every stream of a category. Nothing is removed when a policy is set: an
-- explicit `esc retention run` (esc_retention_run) applies the policies,
-- through truncate_stream, so the guard of migration 8 and the retention
-- log see every removal as any other truncation (docs/retention.md).
--
-- Which policy applies: a stream's own policy, when it has one, replaces
-- its category's (the two are not merged). What goes: the longest prefix
-- of the stream that either limit removes, with two exceptions that make
-- a run never remove more than the policy says, nor by surprise:
--   * max_age removes only a prefix whose every event is older than the
--     age (recorded_at is the writing transaction's start, so a stream's
--     times need not rise with its versions: stop at the first young one);
--   * the stream's last event always stays (as EventStoreDB's scavenge
--     keeps it), so a stream under a policy is never emptied.
-- The stream keeps its version either way: truncation never renumbers.

CREATE TABLE @SCHEMA@.retention_policies (
  kind      text NOT NULL CHECK (kind IN ('stream', 'category')),
  target    text NOT NULL,
  max_age_s bigint CHECK (max_age_s BETWEEN 1 AND 3155760000), -- 100 years
  max_count bigint CHECK (max_count >= 1),
  set_by    text NOT NULL DEFAULT session_user,
  set_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, target),
  CHECK (max_age_s IS NOT NULL OR max_count IS NOT NULL)
);

-- Sets (replaces) the policy of a stream or category that exists; ES004
-- when it does not, or when the stream is tombstoned (nothing to keep).
CREATE FUNCTION @SCHEMA@.retention_policy_set(p_kind text, p_target text,
                                              p_max_age_s bigint,
                                              p_max_count bigint)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_kind = 'stream' AND NOT EXISTS (
       SELECT 1 FROM @SCHEMA@.streams s
        WHERE s.stream_id = p_target AND NOT s.tombstoned) THEN
    RAISE EXCEPTION 'stream % does not exist or is tombstoned', p_target
      USING ERRCODE = 'ES004';
  END IF;
  IF p_kind = 'category' AND NOT EXISTS (
       SELECT 1 FROM @SCHEMA@.streams s
        WHERE split_part(s.stream_id, '-', 1) = p_target) THEN
    RAISE EXCEPTION 'category % has no streams', p_target
      USING ERRCODE = 'ES004';
  END IF;
  INSERT INTO @SCHEMA@.retention_policies (kind, target, max_age_s, max_count)
  VALUES (p_kind, p_target, p_max_age_s, p_max_count)
  ON CONFLICT (kind, target) DO UPDATE
     SET max_age_s = excluded.max_age_s, max_count = excluded.max_count,
         set_by = session_user, set_at = now();
END
$$;

CREATE FUNCTION @SCHEMA@.retention_policy_remove(p_kind text, p_target text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM @SCHEMA@.retention_policies
   WHERE kind = p_kind AND target = p_target;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no retention policy for % %', p_kind, p_target
      USING ERRCODE = 'ES004';
  END IF;
END
$$;

-- What a run would remove now: one row per stream that has events to go,
-- with the policy that applies and the version before which events go.
CREATE FUNCTION @SCHEMA@.retention_plan()
RETURNS TABLE (stream_id text, kind text, target text, max_age_s bigint,
               max_count bigint, set_by text, set_at timestamptz,
               version bigint, before_version bigint, events bigint)
LANGUAGE sql STABLE AS $$
  WITH applied AS (
    SELECT s.stream_id, s.version, p.*
      FROM @SCHEMA@.retention_policies p
      JOIN @SCHEMA@.streams s ON s.stream_id = p.target
     WHERE p.kind = 'stream'
    UNION ALL
    SELECT s.stream_id, s.version, p.*
      FROM @SCHEMA@.retention_policies p
      JOIN @SCHEMA@.streams s ON split_part(s.stream_id, '-', 1) = p.target
     WHERE p.kind = 'category'
       AND NOT EXISTS (SELECT 1 FROM @SCHEMA@.retention_policies q
                        WHERE q.kind = 'stream' AND q.target = s.stream_id)
  ), cut AS (
    SELECT a.*, least(a.version, greatest(
             coalesce(a.version - a.max_count + 1, 0),
             CASE WHEN a.max_age_s IS NULL THEN 0
                  ELSE coalesce((SELECT min(e.stream_version)
                                   FROM @SCHEMA@.events e
                                  WHERE e.stream_id = a.stream_id
                                    AND e.recorded_at >= now() -
                                        make_interval(secs => a.max_age_s)),
                                a.version + 1) END)) AS before_version
      FROM applied a
     WHERE NOT EXISTS (SELECT 1 FROM @SCHEMA@.streams t
                        WHERE t.stream_id = a.stream_id AND t.tombstoned)
  ), counted AS (
    SELECT c.*, (SELECT count(*) FROM @SCHEMA@.events e
                  WHERE e.stream_id = c.stream_id
                    AND e.stream_version < c.before_version) AS events
      FROM cut c
  )
  SELECT n.stream_id, n.kind, n.target, n.max_age_s, n.max_count, n.set_by,
         n.set_at, n.version, n.before_version, n.events
    FROM counted n WHERE n.events > 0
   ORDER BY n.stream_id
$$;

-- Policies and runs are the owner's (operators run `esc retention` as
-- the schema owner): a role that could set a policy could remove events.
-- The writer and reader only read them (`esc retention show`). Only
-- PUBLIC's default EXECUTE is revoked: revoking the roles' too would take
-- back what migration 12 granted them.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @SCHEMA@ FROM PUBLIC;
GRANT SELECT ON @SCHEMA@.retention_policies TO @WRITER@, @READER@;
