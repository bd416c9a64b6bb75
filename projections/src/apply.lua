-- The atomic unit of a projection: a batch of Redis commands and the move
-- of its checkpoint, guarded by compare-and-set (see esc__redis_apply in
-- projection_int.h and docs/projections.md).
--
-- KEYS[1]  P:generation, the serving generation
-- KEYS[2]  P:g<G>:p<N>:checkpoint, the partition's checkpoint
-- KEYS[3]  a dead-letter guard key when ARGV[4] == "1" (else unused)
-- ARGV[1]  the serving generation the worker expects (decimal)
-- ARGV[2]  the checkpoint the worker read; "" means the key must be absent
-- ARGV[3]  the new checkpoint
-- ARGV[4]  "1" when KEYS[3] is a guard, "0" otherwise
-- ARGV[5..] the commands: an argument count, then that many arguments,
--           repeated
--
-- Replies, checked in this order:
--   {"vanished"}            the generation key is missing, or the checkpoint
--                           is missing although one was expected
--   {"moved", gen}          another generation is serving
--   {"stale", checkpoint}   the checkpoint is not the expected one ("" when
--                           absent); nothing was written
--   {"failed", i, "bad batch: ..."}
--                           the command list is malformed; nothing written
--   {"applied", "guarded"}  the guard key exists: this dead-letter retry was
--                           applied before; nothing was written this time
--   {"failed", i, err}      command i (from 0) failed with err; the commands
--                           before it were applied (Redis does not roll back)
--                           and the checkpoint now reads "failed <old>: ..."
--                           so the batch is never applied again
--   {"applied"}             every command ran, the checkpoint is ARGV[3] and
--                           the guard (if any) is set
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
local n = #ARGV
local i = 5
local index = 0
while i <= n do
  local argc = tonumber(ARGV[i])
  if not argc or argc < 1 or argc > 7000 or argc ~= math.floor(argc)
      or i + argc > n then
    return {'failed', index, 'bad batch: command ' .. index ..
            ' has an invalid argument count'}
  end
  i = i + argc + 1
  index = index + 1
end

if ARGV[4] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  return {'applied', 'guarded'}
end

i = 5
index = 0
while i <= n do
  local argc = tonumber(ARGV[i])
  local reply = redis.pcall(unpack(ARGV, i + 1, i + argc))
  if type(reply) == 'table' and reply.err then
    -- The commands before this one are applied and cannot be undone: mark
    -- the partition failed in its checkpoint, so no worker (after a
    -- restart, or a standby) applies this batch again. A rebuild clears it.
    redis.call('SET', KEYS[2], 'failed ' .. (current or '') .. ': command ' ..
               index .. ': ' .. reply.err)
    return {'failed', index, reply.err}
  end
  i = i + argc + 1
  index = index + 1
end

redis.call('SET', KEYS[2], ARGV[3])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], ARGV[3])
end
return {'applied'}
