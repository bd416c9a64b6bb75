-- Makes a rebuilt generation the serving one (see esc__redis_switch in
-- projection_int.h), atomically and only when every partition is ready.
--
-- KEYS[1]  P:generation        KEYS[2]  P:version
-- KEYS[3]  P:rebuild           KEYS[4]  P:rebuild:ready
-- KEYS[5]  P:partitions (set to ARGV[4]: the new generation's count)
-- ARGV[1]  from: the generation expected to be serving ("0": none yet, the
--          generation key must then be absent)
-- ARGV[2]  to: the rebuilt generation
-- ARGV[3]  the projection version it was built with
-- ARGV[4]  the number of partitions that must be in the ready set
--
-- Returns 1 when it switched, 0 when it did not (another generation is
-- serving, or not every partition has caught up).

local gen = redis.call('GET', KEYS[1])
if gen then
  if gen ~= ARGV[1] then
    return 0
  end
elseif ARGV[1] ~= '0' then
  return 0
end
if redis.call('SCARD', KEYS[4]) < tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[5], ARGV[4])
redis.call('DEL', KEYS[3], KEYS[4])
return 1
