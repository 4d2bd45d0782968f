--[[ Acknowledges one delivered entry and enqueues a message in its place, atomically: a retry is
never both lost and acknowledged, nor run twice because the acknowledgement was lost.
KEYS[1] the lane stream the entry was read from
KEYS[2] the queue's delayed set
KEYS[3] KEYS[4] KEYS[5] the queue's lane streams 0, 1, 2
ARGV[1] the consumer group
ARGV[2] the entry id
ARGV[3] when the message is due (epoch ms); at or before the server's time, it goes onto its lane now
ARGV[4] its lane (0, 1 or 2)
ARGV[5] the message
ARGV[6] (optional) deliveries so far, carried by the new entry's field 'd' so that a message put back
        again and again is still counted toward maxDeliveries; only when it goes onto its lane now
Returns 1. ]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = tonumber(ARGV[3])
if due <= now then
  local carried = tonumber(ARGV[6] or '0') or 0
  if carried > 0 then
    redis.call('XADD', KEYS[3 + tonumber(ARGV[4])], '*', 'm', ARGV[5], 'd', carried)
  else
    redis.call('XADD', KEYS[3 + tonumber(ARGV[4])], '*', 'm', ARGV[5])
  end
else
  redis.call('ZADD', KEYS[2], due, ARGV[4] .. ARGV[5])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
