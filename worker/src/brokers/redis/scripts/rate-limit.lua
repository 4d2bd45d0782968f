--[[ A rate limit shared by every worker (GCRA: one permit every interval, no burst), on the
server's clock so workers with skewed clocks agree.
KEYS[1] the limiter's key
ARGV[1] the interval between permits (ms)
Returns 0 when a permit is granted, else the ms to wait before asking again. ]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat > now then return tat - now end
redis.call('SET', KEYS[1], now + interval, 'PX', interval + 1000)
return 0
