--[[ Takes a lease that nobody holds, with a new fencing token: SET NX PX, the token drawn from a
counter so that every holding has a larger one than the last. A lease held by anyone, the caller
included, is left alone (a holder keeps it with lease-renew.lua).
KEYS[1] the lease (its value: "<token> <holder>")
KEYS[2] the counter of fencing tokens
ARGV[1] the candidate's identity
ARGV[2] the lease duration (ms)
Returns { token, holder, ms left }: the token is the caller's when the holder is the caller. ]]
local current = redis.call('GET', KEYS[1])
if current then
  local token, holder = string.match(current, '^(%d+) (.*)$')
  return { tonumber(token), holder, redis.call('PTTL', KEYS[1]) }
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'NX', 'PX', ARGV[2])
return { token, ARGV[1], tonumber(ARGV[2]) }
