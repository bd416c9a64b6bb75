-- esc event store, migration 17: process managers' deadlines and parked
-- instances.
--
-- A process manager (<esc/process.h>) keeps its instances' histories as
-- streams of the log ("process:<name>-<instance>"); what lives here is the
-- runtime's index over them, never the truth:
--
--   process_instances        each instance's folded version and whether it
--                            ended (`esc processes`).
--   process_deadlines        the deadlines the instance streams hold
--                            pending, so the worker finds the due ones
--                            without folding every instance. Written
--                            after the records that schedule or cancel
--                            them, replaced wholesale per instance
--                            (process_deadlines_sync), and a firing
--                            checks the instance stream first: a row
--                            that outlived its cancellation never fires.
--   process_parked           instances whose inputs keep failing: retried
--                            with backoff (state 'retrying'), then parked
--                            for an operator (state 'parked').
--   process_parked_inputs    the inputs of a parked instance, in arrival
--                            order: the one that failed, then every later
--                            one, kept undecided until a retry replays
--                            them or a discard drops them.
--
-- As migration 12 requires, the roles write none of this directly: the
-- worker (the writer) calls the SECURITY DEFINER functions below, whose
-- search_path is pinned to pg_catalog, pg_temp.

-- One row per instance the runtime handled an input of: how far its
-- stream was folded and whether it had ended, for `esc processes`.
CREATE TABLE @SCHEMA@.process_instances (
  process       text NOT NULL CHECK (octet_length(process) <= 48),
  instance      text NOT NULL CHECK (octet_length(instance) <= 128),
  version       bigint NOT NULL CHECK (version >= 1),
  ended         boolean NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (process, instance)
);

CREATE TABLE @SCHEMA@.process_deadlines (
  process       text NOT NULL CHECK (octet_length(process) <= 48),
  instance      text NOT NULL CHECK (octet_length(instance) <= 128),
  deadline_id   uuid NOT NULL,
  name          text NOT NULL CHECK (octet_length(name) <= 48),
  due_us        bigint NOT NULL,
  claimed_until timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (process, deadline_id)
);
CREATE INDEX process_deadlines_due ON @SCHEMA@.process_deadlines
  (process, due_us);
CREATE INDEX process_deadlines_instance ON @SCHEMA@.process_deadlines
  (process, instance);

CREATE TABLE @SCHEMA@.process_parked (
  process       text NOT NULL CHECK (octet_length(process) <= 48),
  instance      text NOT NULL CHECK (octet_length(instance) <= 128),
  state         text NOT NULL CHECK (state IN ('retrying', 'parked')),
  attempts      integer NOT NULL DEFAULT 1 CHECK (attempts >= 0),
  error         text NOT NULL CHECK (octet_length(error) <= 1024),
  retry_at      timestamptz NOT NULL DEFAULT now(),
  claimed_until timestamptz,
  parked_at     timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (process, instance)
);

-- kind 'event': ref is the source event's id (read back with
-- esc_read_event); 'deadline': ref is the deadline's id.
CREATE TABLE @SCHEMA@.process_parked_inputs (
  process   text NOT NULL,
  instance  text NOT NULL,
  seq       bigint GENERATED ALWAYS AS IDENTITY,
  kind      text NOT NULL CHECK (kind IN ('event', 'deadline')),
  ref       uuid NOT NULL,
  added_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (process, instance, ref),
  FOREIGN KEY (process, instance) REFERENCES @SCHEMA@.process_parked
    ON DELETE CASCADE
);
CREATE INDEX process_parked_inputs_order ON @SCHEMA@.process_parked_inputs
  (process, instance, seq);

-- ----------------------------------------------------------- deadlines --

-- Mirrors an instance as its stream was just folded (version p_version):
-- whether it ended, and its deadline rows made exactly the pending ones
-- given (others deleted, missing ones inserted, present ones kept with
-- their claims). A runner with an older view never moves the instance
-- row back.
CREATE FUNCTION @SCHEMA@.process_instance_sync(
  p_process text, p_instance text, p_version bigint, p_ended boolean,
  p_ids uuid[], p_names text[], p_dues bigint[])
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO @SCHEMA@.process_instances AS i (process, instance, version,
                                               ended)
  VALUES (p_process, p_instance, p_version, p_ended)
  ON CONFLICT (process, instance) DO UPDATE
    SET version = excluded.version, ended = excluded.ended,
        updated_at = now()
  WHERE i.version <= excluded.version;
  DELETE FROM @SCHEMA@.process_deadlines d
   WHERE d.process = p_process AND d.instance = p_instance
     AND d.deadline_id <> ALL (coalesce(p_ids, '{}'::uuid[]));
  INSERT INTO @SCHEMA@.process_deadlines (process, instance, deadline_id,
                                          name, due_us)
  SELECT p_process, p_instance, u.id, u.name, u.due
    FROM unnest(p_ids, p_names, p_dues) AS u(id, name, due)
  ON CONFLICT (process, deadline_id) DO NOTHING;
$$;

-- Claims up to p_limit deadlines due at p_now_us (the runtime's clock,
-- which tests control) for p_claim_ms of server time, skipping parked
-- instances (their inputs wait) and rows another worker claimed.
CREATE FUNCTION @SCHEMA@.process_deadlines_claim(
  p_process text, p_now_us bigint, p_limit integer, p_claim_ms integer,
  OUT instance text, OUT deadline_id uuid, OUT name text, OUT due_us bigint)
RETURNS SETOF record
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  UPDATE @SCHEMA@.process_deadlines d
     SET claimed_until = clock_timestamp()
                         + make_interval(secs => p_claim_ms / 1000.0)
   WHERE (d.process, d.deadline_id) IN (
     SELECT c.process, c.deadline_id FROM @SCHEMA@.process_deadlines c
      WHERE c.process = p_process AND c.due_us <= p_now_us
        AND (c.claimed_until IS NULL OR c.claimed_until < clock_timestamp())
        AND NOT EXISTS (SELECT 1 FROM @SCHEMA@.process_parked k
                         WHERE k.process = c.process
                           AND k.instance = c.instance)
      ORDER BY c.due_us LIMIT p_limit FOR UPDATE SKIP LOCKED)
  RETURNING d.instance, d.deadline_id, d.name, d.due_us;
$$;

-- --------------------------------------------------------------- parking --

-- Keeps an input for an instance that is parked: true when it was (the
-- input is queued behind the others), false when the instance is not
-- parked (handle the input now). The row lock orders it against
-- process_unpark: an input is either queued before the retry finishes
-- (and replayed by it) or handled after. Idempotent per input.
CREATE FUNCTION @SCHEMA@.process_park_input(
  p_process text, p_instance text, p_kind text, p_ref uuid)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM 1 FROM @SCHEMA@.process_parked k
   WHERE k.process = p_process AND k.instance = p_instance FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO @SCHEMA@.process_parked_inputs (process, instance, kind, ref)
  VALUES (p_process, p_instance, p_kind, p_ref)
  ON CONFLICT DO NOTHING;
  RETURN true;
END
$$;

-- Parks an instance on the input that failed (first failure: state
-- 'retrying', retried at p_retry_ms from now), or adds the input to an
-- instance parked already.
CREATE FUNCTION @SCHEMA@.process_park(
  p_process text, p_instance text, p_kind text, p_ref uuid, p_error text,
  p_retry_ms integer)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO @SCHEMA@.process_parked (process, instance, state, error,
                                       retry_at)
  VALUES (p_process, p_instance, 'retrying', left(p_error, 1000),
          clock_timestamp() + make_interval(secs => p_retry_ms / 1000.0))
  ON CONFLICT (process, instance) DO NOTHING;
  SELECT @SCHEMA@.process_park_input(p_process, p_instance, p_kind, p_ref);
$$;

-- Claims up to p_limit instances due for an automatic retry for
-- p_claim_ms.
CREATE FUNCTION @SCHEMA@.process_parked_claim(
  p_process text, p_limit integer, p_claim_ms integer,
  OUT instance text, OUT attempts integer)
RETURNS SETOF record
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  UPDATE @SCHEMA@.process_parked k
     SET claimed_until = clock_timestamp()
                         + make_interval(secs => p_claim_ms / 1000.0)
   WHERE (k.process, k.instance) IN (
     SELECT c.process, c.instance FROM @SCHEMA@.process_parked c
      WHERE c.process = p_process AND c.state = 'retrying'
        AND c.retry_at <= clock_timestamp()
        AND (c.claimed_until IS NULL OR c.claimed_until < clock_timestamp())
      ORDER BY c.retry_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
  RETURNING k.instance, k.attempts;
$$;

-- Drops the inputs a retry handled (seq <= p_upto) and, when none is
-- left, the parked row: true when the instance flows again.
CREATE FUNCTION @SCHEMA@.process_unpark(
  p_process text, p_instance text, p_upto bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM 1 FROM @SCHEMA@.process_parked k
   WHERE k.process = p_process AND k.instance = p_instance FOR UPDATE;
  IF NOT FOUND THEN
    RETURN true;
  END IF;
  DELETE FROM @SCHEMA@.process_parked_inputs i
   WHERE i.process = p_process AND i.instance = p_instance
     AND i.seq <= p_upto;
  IF EXISTS (SELECT 1 FROM @SCHEMA@.process_parked_inputs i
              WHERE i.process = p_process AND i.instance = p_instance) THEN
    RETURN false;
  END IF;
  DELETE FROM @SCHEMA@.process_parked k
   WHERE k.process = p_process AND k.instance = p_instance;
  RETURN true;
END
$$;

-- A retry failed again: after p_max attempts the instance waits for an
-- operator ('parked'), else it is retried at p_retry_ms from now.
CREATE FUNCTION @SCHEMA@.process_park_failed(
  p_process text, p_instance text, p_error text, p_max integer,
  p_retry_ms integer)
RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  UPDATE @SCHEMA@.process_parked k
     SET attempts = k.attempts + 1, error = left(p_error, 1000),
         state = CASE WHEN k.attempts + 1 >= p_max THEN 'parked'
                      ELSE 'retrying' END,
         retry_at = clock_timestamp()
                    + make_interval(secs => p_retry_ms / 1000.0),
         claimed_until = NULL, updated_at = now()
   WHERE k.process = p_process AND k.instance = p_instance
  RETURNING k.state;
$$;

-- An operator's retry (`esc processes retry`): the instance is retried
-- at once, with a fresh count of attempts. Whether it was parked.
CREATE FUNCTION @SCHEMA@.process_parked_retry(p_process text,
                                              p_instance text)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH u AS (
    UPDATE @SCHEMA@.process_parked k
       SET state = 'retrying', attempts = 0, retry_at = clock_timestamp(),
           claimed_until = NULL, updated_at = now()
     WHERE k.process = p_process AND k.instance = p_instance RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM u);
$$;

-- An operator's discard (`esc processes discard`): the kept inputs are
-- dropped undecided and the instance flows again. Whether it was parked.
CREATE FUNCTION @SCHEMA@.process_parked_discard(p_process text,
                                                p_instance text)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH d AS (
    DELETE FROM @SCHEMA@.process_parked k
     WHERE k.process = p_process AND k.instance = p_instance RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM d);
$$;

-- ---------------------------------------------------------- privileges --

REVOKE ALL ON @SCHEMA@.process_instances, @SCHEMA@.process_deadlines,
  @SCHEMA@.process_parked, @SCHEMA@.process_parked_inputs
  FROM @WRITER@, @READER@;
GRANT SELECT ON @SCHEMA@.process_instances, @SCHEMA@.process_deadlines,
  @SCHEMA@.process_parked, @SCHEMA@.process_parked_inputs
  TO @WRITER@, @READER@;
REVOKE ALL ON FUNCTION
  @SCHEMA@.process_instance_sync(text, text, bigint, boolean, uuid[], text[],
                                 bigint[]),
  @SCHEMA@.process_deadlines_claim(text, bigint, integer, integer),
  @SCHEMA@.process_park(text, text, text, uuid, text, integer),
  @SCHEMA@.process_park_input(text, text, text, uuid),
  @SCHEMA@.process_parked_claim(text, integer, integer),
  @SCHEMA@.process_unpark(text, text, bigint),
  @SCHEMA@.process_park_failed(text, text, text, integer, integer),
  @SCHEMA@.process_parked_retry(text, text),
  @SCHEMA@.process_parked_discard(text, text)
  FROM PUBLIC, @WRITER@, @READER@;
GRANT EXECUTE ON FUNCTION
  @SCHEMA@.process_instance_sync(text, text, bigint, boolean, uuid[], text[],
                                 bigint[]),
  @SCHEMA@.process_deadlines_claim(text, bigint, integer, integer),
  @SCHEMA@.process_park(text, text, text, uuid, text, integer),
  @SCHEMA@.process_park_input(text, text, text, uuid),
  @SCHEMA@.process_parked_claim(text, integer, integer),
  @SCHEMA@.process_unpark(text, text, bigint),
  @SCHEMA@.process_park_failed(text, text, text, integer, integer)
  TO @WRITER@;
-- Retrying or discarding a parked instance is an operator's action, like
-- `esc dead-letters retry|discard` (decision 0013): the owner's only.
