--[[ Stores task results, each with its expiry, and publishes each on its channel so that waiters
wake without polling. One call carries every result recorded in the same tick.
KEYS[1..n] the result keys
ARGV[3i-2] result i's time to live (ms)
ARGV[3i-1] result i (JSON)
ARGV[3i] result i's channel
Returns n. ]]
for i, key in ipairs(KEYS) do
  local text = ARGV[3 * i - 1]
  redis.call('SET', key, text, 'PX', ARGV[3 * i - 2])
  redis.call('PUBLISH', ARGV[3 * i], text)
end
return #KEYS
