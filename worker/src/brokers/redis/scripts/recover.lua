--[[ Claims entries that another consumer received and has not kept alive for the visibility timeout
(it died), with how many times each has been delivered, so the caller can dead-letter poison.
KEYS[1] a lane stream
ARGV[1] the consumer group
ARGV[2] the claiming consumer
ARGV[3] the visibility timeout (ms)
ARGV[4] the most entries to claim
ARGV[5] the cursor to resume the scan from (0-0 to start over)
Returns { next cursor, { { id, fields, deliveries }, ... } }. ]]
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5], 'COUNT', ARGV[4])
local out = {}
for _, entry in ipairs(claimed[2]) do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
  local deliveries = 1
  if pending[1] then deliveries = pending[1][4] end
  out[#out + 1] = { entry[1], entry[2], deliveries }
end
return { claimed[1], out }
