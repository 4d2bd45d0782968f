--[[ Moves a schedule's watermark forward past ticks settled without a fire (missed and skipped, or
folded into one fire), and records its next tick. Never moves the watermark back. Fenced like a fire.
KEYS[1] the schedule's state hash
KEYS[2] the queue's fence for the lease
ARGV[1] the new watermark (epoch ms)
ARGV[2] the schedule's next tick (epoch ms), or '' when there is none
ARGV[3] how many ticks were missed and not fired
ARGV[4] the fencing token, or -1 when the host holds no lease
Returns 1, or -1 when fenced off. ]]
local token = tonumber(ARGV[4])
if token >= 0 then
  local highest = tonumber(redis.call('GET', KEYS[2]) or '-1')
  if token < highest then return -1 end
  if token > highest then redis.call('SET', KEYS[2], token) end
end
local watermark = tonumber(redis.call('HGET', KEYS[1], 'watermark') or '-1')
if tonumber(ARGV[1]) > watermark then redis.call('HSET', KEYS[1], 'watermark', ARGV[1]) end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'nextTick') else redis.call('HSET', KEYS[1], 'nextTick', ARGV[2]) end
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBY', KEYS[1], 'missed', ARGV[3]) end
return 1
