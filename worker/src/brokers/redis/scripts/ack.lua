--[[ Acknowledges delivered entries and deletes them, so an acknowledged stream stays empty.
KEYS[1] the lane stream the entries were read from
ARGV[1] the consumer group
ARGV[2..] entry ids
Returns the number of entries acknowledged. ]]
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
