-- The atomic unit of a projection: a batch of Redis commands and the move
-- of its checkpoint, guarded by compare-and-set (see esc__redis_apply in
-- projection_int.h and docs/projections.md).
--
-- KEYS[1]  P:generation, the serving generation
-- KEYS[2]  P:g<G>:p<N>:checkpoint, the partition's checkpoint
-- KEYS[3]  a dead-letter guard key when ARGV[4] == "1" (else unused)
-- KEYS[4]  P:g<G>:p<N>:checkpoint:partial, the partial record (below)
-- ARGV[1]  the serving generation the worker expects (decimal)
-- ARGV[2]  the checkpoint the worker read; "" means the key must be absent
-- ARGV[3]  the new checkpoint
-- ARGV[4]  "1" when KEYS[3] is a guard (a dead-letter retry), "0" otherwise
-- ARGV[5]  with a guard: how many of the event's commands took effect
--          before (the letter's record), to skip; else unused
-- ARGV[6]  E, the number of events that queued commands; then E triples:
--          the checkpoint before the event, its position, its command
--          count (the counts add up to the number of commands)
-- ARGV[7 + 3E..] the commands: an argument count, then that many
--          arguments, repeated
--
-- Redis has no rollback: when a command fails, the ones before it stay
-- applied. So a failure is recorded, in this script, with the event it
-- belongs to: the checkpoint moves to just before that event (the events
-- before it are done) and the partial record says how many of that
-- event's own commands took effect. A later batch that starts with the
-- same event skips them; any batch that moves the checkpoint deletes the
-- record. A dead-letter retry records its progress in its guard instead
-- ("partial <k>"), so each command of an event runs at most once however
-- often it is retried.
--
-- Replies, checked in this order:
--   {"vanished"}            the generation key is missing, or the checkpoint
--                           is missing although one was expected
--   {"moved", gen}          another generation is serving
--   {"stale", checkpoint}   the checkpoint is not the expected one ("" when
--                           absent); nothing was written
--   {"failed", i, "bad batch: ..."}
--                           the command list is malformed; nothing written
--   {"applied", "guarded"}  the guard key says this dead-letter retry was
--                           applied before; nothing was written this time
--   {"transient", i, err}   command i (from 0) was refused (OOM, READONLY)
--                           and so was recording it; Redis refuses those
--                           only before a script's first write, so nothing
--                           was written
--   {"failed", i, err, e, k, before, at}
--                           command i failed with err: it is command k of
--                           event e (from 0), at position `at`; the events
--                           before e are applied, the checkpoint is
--                           `before` and the partial record (or the guard)
--                           says k
--   {"applied"}             every command ran, the checkpoint is ARGV[3],
--                           the partial record is gone and the guard (if
--                           any) is set
--
-- Plain Lua 5.1 as Redis embeds it: no cjson, no globals.

local gen = redis.call('GET', KEYS[1])
if not gen then
  return {'vanished'}
end
if gen ~= ARGV[1] then
  return {'moved', gen}
end

local expected = ARGV[2]
local current = redis.call('GET', KEYS[2])
if expected == '' then
  if current then
    return {'stale', current}
  end
else
  if not current then
    return {'vanished'}
  end
  if current ~= expected then
    return {'stale', current}
  end
end

-- Check the whole list before writing anything, so a malformed batch
-- cannot half-apply. unpack() is bounded by Lua's C stack (LUAI_MAXCSTACK
-- 8000), hence the cap on one command's arguments.
local function bad(index, why)
  return {'failed', index, 'bad batch: ' .. why}
end
local n = #ARGV
local nev = tonumber(ARGV[6])
if not nev or nev < 0 or nev ~= math.floor(nev) or 6 + 3 * nev > n then
  return bad(0, 'invalid event count')
end
local first = 7 + 3 * nev
local i = first
local ncmd = 0
while i <= n do
  local argc = tonumber(ARGV[i])
  if not argc or argc < 1 or argc > 7000 or argc ~= math.floor(argc)
      or i + argc > n then
    return bad(ncmd, 'command ' .. ncmd .. ' has an invalid argument count')
  end
  i = i + argc + 1
  ncmd = ncmd + 1
end
local counted = 0
for e = 0, nev - 1 do
  local c = tonumber(ARGV[9 + 3 * e])
  if not c or c < 1 or c ~= math.floor(c) then
    return bad(0, 'event ' .. e .. ' has an invalid command count')
  end
  counted = counted + c
end
if counted ~= ncmd then
  return bad(0, 'the events hold ' .. counted .. ' commands, the batch ' ..
             ncmd)
end

-- How many commands of the first event already took effect.
local guarded = ARGV[4] == '1'
local skip = 0
if guarded then
  local g = redis.call('GET', KEYS[3])
  if g then
    local done = string.match(g, '^partial (%d+)$')
    if not done then
      return {'applied', 'guarded'}
    end
    skip = tonumber(done)
  else
    skip = tonumber(ARGV[5]) or 0
  end
elseif nev > 0 then
  local p = redis.call('GET', KEYS[4])
  if p then
    local at, done = string.match(p, '^(%S+) (%d+)$')
    if at == ARGV[8] then
      skip = tonumber(done)
    end
  end
end

-- Records that command k of event e failed (see the top); a table with
-- err when Redis refused to record it.
local function record(e, k)
  local before, at = ARGV[7 + 3 * e], ARGV[8 + 3 * e]
  if guarded then
    if k == 0 then
      return {ok = 'OK'}
    end
    return redis.pcall('SET', KEYS[3], 'partial ' .. k)
  end
  local r = redis.pcall('SET', KEYS[2], before)
  if type(r) == 'table' and r.err then
    return r
  end
  if k == 0 then
    return redis.pcall('DEL', KEYS[4])
  end
  return redis.pcall('SET', KEYS[4], at .. ' ' .. k)
end

i = first
local e, k, left = 0, 0, tonumber(ARGV[9])
for index = 0, ncmd - 1 do
  local argc = tonumber(ARGV[i])
  if e > 0 or k >= skip then
    local reply = redis.pcall(unpack(ARGV, i + 1, i + argc))
    if type(reply) == 'table' and reply.err then
      local r = record(e, k)
      if type(r) == 'table' and r.err then
        return {'transient', index, reply.err}
      end
      return {'failed', index, reply.err, e, k, ARGV[7 + 3 * e],
              ARGV[8 + 3 * e]}
    end
  end
  i = i + argc + 1
  k = k + 1
  if k == left and e + 1 < nev then
    e, k, left = e + 1, 0, tonumber(ARGV[9 + 3 * (e + 1)])
  end
end

redis.call('SET', KEYS[2], ARGV[3])
if guarded then
  redis.call('SET', KEYS[3], ARGV[3])
else
  redis.call('DEL', KEYS[4])
end
return {'applied'}
