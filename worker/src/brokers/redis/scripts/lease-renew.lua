--[[ Extends a lease, only if it is still the caller's holding (compare and set on token and holder):
a holder that lost it, even to itself after an expiry, must take it anew with a new token.
KEYS[1] the lease
ARGV[1] the holding: "<token> <holder>"
ARGV[2] the lease duration (ms)
Returns 1 when renewed, 0 when the holding is gone. ]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
