--[[ Moves delayed messages that are due onto their lane streams. Atomic, so any number of workers
may run it at once without moving a message twice.
KEYS[1] the queue's delayed set (members are the lane digit followed by the message)
KEYS[2] KEYS[3] KEYS[4] the queue's lane streams 0, 1, 2
ARGV[1] the most messages to move in one call
Returns { moved, ms until the next delayed message is due (-1 if none) }. ]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2 + tonumber(string.sub(member, 1, 1))], '*', 'm', string.sub(member, 2))
end
-- unpack() takes a few thousand values at most: remove in chunks, whatever ARGV[1] is.
for from = 1, #due, 1000 do redis.call('ZREM', KEYS[1], unpack(due, from, math.min(from + 999, #due))) end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return { #due, -1 } end
return { #due, math.max(0, tonumber(first[2]) - now) }
