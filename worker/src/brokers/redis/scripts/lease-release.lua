--[[ Gives a lease up, only if it is still the caller's holding, so a successor need not wait out
the duration.
KEYS[1] the lease
ARGV[1] the holding: "<token> <holder>"
Returns 1 when released, 0 when the holding was gone already. ]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
