-- esc event store, migration 16: durable subscriptions.
--
-- A durable subscription (esc_subscription, <esc/projection.h>) is run by
-- the projection workers, on the same registry row, leases, partitions and
-- dead letters as a projection, but its handler acts outside Redis, so its
-- checkpoint is kept here: losing Redis changes nothing about what it has
-- done. See docs/decisions/0017-durable-subscriptions.md.
--
-- Projections and subscriptions share <schema>.projections (one namespace
-- of names: the lease keys and dead letters are named by it), told apart
-- by kind. As migration 12 requires, the roles write none of this
-- directly: the worker (the writer) calls the SECURITY DEFINER functions
-- below, whose search_path is pinned to pg_catalog, pg_temp.

ALTER TABLE @SCHEMA@.projections
  ADD COLUMN kind text NOT NULL DEFAULT 'projection'
  CHECK (kind IN ('projection', 'subscription'));

-- One checkpoint per partition of a layout. A generation has one
-- partition count (decision 12): generation 1 is the layout the first
-- registration made, with a row per partition from the start, so a missing
-- row is never "not started". The checkpoint is the position token of the
-- last event the partition is done with (delivered or parked).
-- stopped_at/stop_reason: a partition that stopped (on_error STOP) at the
-- event after checkpoint stopped_at; stale once the checkpoint moved on.
CREATE TABLE @SCHEMA@.subscription_checkpoints (
  subscription    text NOT NULL,
  generation      bigint NOT NULL CHECK (generation >= 1),
  partition       integer NOT NULL CHECK (partition >= 0),
  tx_id           xid8 NOT NULL,
  global_position bigint NOT NULL CHECK (global_position >= 0),
  stopped_tx_id   xid8,
  stopped_global  bigint,
  stop_reason     text CHECK (octet_length(stop_reason) <= 1024),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription, generation, partition)
);

-- Whether this session holds the advisory lock `key` (a partition's lease,
-- esc__lease_key): pg_locks shows a bigint key as classid = high 32 bits,
-- objid = low 32 bits, objsubid = 1 (projections/src/lease.c).
CREATE FUNCTION @SCHEMA@.session_holds_lease(p_key bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
    WHERE l.pid = pg_catalog.pg_backend_pid()
      AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_catalog.pg_database
                         WHERE datname = pg_catalog.current_database())
      AND l.classid = ((p_key >> 32) & 4294967295)::oid
      AND l.objid = (p_key & 4294967295)::oid)
$$;

-- A projection's registration leaves a subscription of that name alone
-- (partitions comes back NULL: the worker refuses the name).
CREATE OR REPLACE FUNCTION @SCHEMA@.projection_register(
  p_name text, p_version integer, p_partitions integer,
  p_categories text[], p_event_types text[],
  OUT partitions integer, OUT repartition_to integer)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO @SCHEMA@.projections AS p (name, version, partitions,
                                         categories, event_types)
  VALUES (p_name, p_version, p_partitions, p_categories, p_event_types)
  ON CONFLICT (name) DO UPDATE SET version = excluded.version,
    categories = excluded.categories, event_types = excluded.event_types,
    updated_at = now()
  WHERE p.kind = 'projection'
  RETURNING partitions, repartition_to;
$$;

-- A worker registers its subscription: the first registration sets the
-- layout (as for projections, migration 6) and creates generation 1's
-- checkpoints at p_start (the start of the log, or the head then); later
-- ones update what it follows and keep layout and checkpoints. No row when
-- the name is a projection's.
CREATE FUNCTION @SCHEMA@.subscription_register(
  p_name text, p_partitions integer, p_categories text[],
  p_event_types text[], p_start_tx xid8, p_start_global bigint,
  OUT partitions integer, OUT repartition_to integer, OUT generation bigint)
RETURNS SETOF record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_parts integer;
  v_to    integer;
BEGIN
  INSERT INTO @SCHEMA@.projections AS p (name, version, partitions,
                                         categories, event_types, kind)
  VALUES (p_name, 1, p_partitions, p_categories, p_event_types,
          'subscription')
  ON CONFLICT (name) DO UPDATE SET categories = excluded.categories,
    event_types = excluded.event_types, updated_at = now()
  WHERE p.kind = 'subscription'
  RETURNING p.partitions, p.repartition_to INTO v_parts, v_to;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  INSERT INTO @SCHEMA@.subscription_checkpoints (subscription, generation,
    partition, tx_id, global_position)
  SELECT p_name, 1, n, p_start_tx, p_start_global
    FROM generate_series(0, v_parts - 1) AS n
  WHERE NOT EXISTS (SELECT 1 FROM @SCHEMA@.subscription_checkpoints c
                     WHERE c.subscription = p_name)
  ON CONFLICT DO NOTHING;
  partitions := v_parts;
  repartition_to := v_to;
  SELECT max(c.generation) INTO generation
    FROM @SCHEMA@.subscription_checkpoints c WHERE c.subscription = p_name;
  RETURN NEXT;
END
$$;

-- Moves a partition's checkpoint from p_from to p_to: the compare-and-set
-- that fences a worker's writes. Only a session holding the partition's
-- lease (p_lease) may move it, only from the value it holds now, and never
-- backwards (an error: no worker asks for that). outcome:
--   moved       done; tx_id/global_position are p_to
--   stale       the checkpoint is not p_from (another worker moved it):
--               they are its current value
--   not_leased  this session does not hold p_lease: nothing changed
--   missing     there is no such checkpoint row
CREATE FUNCTION @SCHEMA@.subscription_checkpoint_move(
  p_name text, p_generation bigint, p_partition integer, p_lease bigint,
  p_from_tx xid8, p_from_global bigint, p_to_tx xid8, p_to_global bigint,
  OUT outcome text, OUT tx_id xid8, OUT global_position bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c @SCHEMA@.subscription_checkpoints%ROWTYPE;
BEGIN
  IF (p_to_tx, p_to_global) < (p_from_tx, p_from_global) THEN
    RAISE EXCEPTION 'subscription %/%: checkpoint % would move back to %',
      p_name, p_partition, p_from_tx || '/' || p_from_global,
      p_to_tx || '/' || p_to_global USING ERRCODE = '22023';
  END IF;
  SELECT * INTO c FROM @SCHEMA@.subscription_checkpoints s
   WHERE s.subscription = p_name AND s.generation = p_generation
     AND s.partition = p_partition FOR UPDATE;
  IF NOT FOUND THEN
    outcome := 'missing';
    RETURN;
  END IF;
  tx_id := c.tx_id;
  global_position := c.global_position;
  IF NOT @SCHEMA@.session_holds_lease(p_lease) THEN
    outcome := 'not_leased';
  ELSIF (c.tx_id, c.global_position) <> (p_from_tx, p_from_global) THEN
    outcome := 'stale';
  ELSE
    UPDATE @SCHEMA@.subscription_checkpoints s
       SET tx_id = p_to_tx, global_position = p_to_global,
           updated_at = now()
     WHERE s.subscription = p_name AND s.generation = p_generation
       AND s.partition = p_partition;
    outcome := 'moved';
    tx_id := p_to_tx;
    global_position := p_to_global;
  END IF;
END
$$;

-- Records that a partition stopped (on_error STOP) at the event after
-- checkpoint p_at, for `esc projections` to show; only by the lease
-- holder, and only while the checkpoint is p_at. Whether it was recorded.
CREATE FUNCTION @SCHEMA@.subscription_stopped(
  p_name text, p_generation bigint, p_partition integer, p_lease bigint,
  p_at_tx xid8, p_at_global bigint, p_reason text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT @SCHEMA@.session_holds_lease(p_lease) THEN
    RETURN false;
  END IF;
  UPDATE @SCHEMA@.subscription_checkpoints s
     SET stopped_tx_id = p_at_tx, stopped_global = p_at_global,
         stop_reason = left(p_reason, 1000), updated_at = now()
   WHERE s.subscription = p_name AND s.generation = p_generation
     AND s.partition = p_partition
     AND (s.tx_id, s.global_position) = (p_at_tx, p_at_global);
  RETURN FOUND;
END
$$;

-- ---------------------------------------------------------- privileges --

REVOKE ALL ON @SCHEMA@.subscription_checkpoints FROM @WRITER@, @READER@;
GRANT SELECT ON @SCHEMA@.subscription_checkpoints TO @WRITER@, @READER@;
REVOKE ALL ON FUNCTION @SCHEMA@.session_holds_lease(bigint),
  @SCHEMA@.subscription_register(text, integer, text[], text[], xid8,
                                 bigint),
  @SCHEMA@.subscription_checkpoint_move(text, bigint, integer, bigint, xid8,
                                        bigint, xid8, bigint),
  @SCHEMA@.subscription_stopped(text, bigint, integer, bigint, xid8, bigint,
                                text)
  FROM PUBLIC, @WRITER@, @READER@;
GRANT EXECUTE ON FUNCTION
  @SCHEMA@.subscription_register(text, integer, text[], text[], xid8,
                                 bigint),
  @SCHEMA@.subscription_checkpoint_move(text, bigint, integer, bigint, xid8,
                                        bigint, xid8, bigint),
  @SCHEMA@.subscription_stopped(text, bigint, integer, bigint, xid8, bigint,
                                text)
  TO @WRITER@;
