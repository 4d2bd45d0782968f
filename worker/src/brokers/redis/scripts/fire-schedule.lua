--[[ Fires one tick of a schedule, at most once ever: enqueues the message, marks the tick fired and
records the fire in the schedule's state, in one step. A tick already settled (marked fired, or at or
before the schedule's watermark) is left alone; so is any fire by a holder of an older lease than one
that has already fired onto this queue (fencing), which must stop acting as the holder.
KEYS[1] the tick's fired mark
KEYS[2] the schedule's state hash
KEYS[3] the queue's fence for the lease (the highest fencing token that has fired onto it)
KEYS[4] the queue's delayed set
KEYS[5] the lane stream of the message's priority
ARGV[1] the tick (epoch ms)
ARGV[2] how long to keep the fired mark (ms)
ARGV[3] the fencing token, or -1 when the host holds no lease
ARGV[4] the message
ARGV[5] the task id
ARGV[6] when the message is due (epoch ms; at or before the server's time, it goes onto its lane now)
ARGV[7] its lane digit (for the delayed set)
ARGV[8] the time of the fire (epoch ms, by the host's clock)
ARGV[9] the schedule's next tick after this fire (epoch ms), or '' when there is none
Returns 1 when fired, 0 when the tick was settled already, -1 when fenced off. ]]
local token = tonumber(ARGV[3])
if token >= 0 then
  local highest = tonumber(redis.call('GET', KEYS[3]) or '-1')
  if token < highest then return -1 end
  if token > highest then redis.call('SET', KEYS[3], token) end
end
local tick = tonumber(ARGV[1])
local watermark = tonumber(redis.call('HGET', KEYS[2], 'watermark') or '-1')
if tick <= watermark or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[6]) <= now then
  redis.call('XADD', KEYS[5], '*', 'm', ARGV[4])
else
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7] .. ARGV[4])
end
redis.call('HSET', KEYS[2], 'watermark', tick, 'lastTick', tick, 'lastTaskId', ARGV[5], 'lastFiredAt', ARGV[8])
if ARGV[9] == '' then redis.call('HDEL', KEYS[2], 'nextTick') else redis.call('HSET', KEYS[2], 'nextTick', ARGV[9]) end
redis.call('HINCRBY', KEYS[2], 'fires', 1)
return 1
