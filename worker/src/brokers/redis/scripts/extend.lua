--[[ Keeps a consumer's deliveries alive: resets their idle time (XCLAIM JUSTID, which does not count
as a delivery), but only for entries the consumer still owns. An entry another consumer has recovered
meanwhile (this one stalled past the visibility timeout) is left to that consumer, not taken back.
KEYS[1] a lane stream
ARGV[1] the consumer group
ARGV[2] the consumer
ARGV[3..] entry ids
Returns the ids still owned. ]]
local kept = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
