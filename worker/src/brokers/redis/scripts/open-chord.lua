--[=[ Opens a chord: the state that its members' results are recorded against, and the callback
message they complete. Opening a chord that exists already does nothing, so a launch that runs again
(its message redelivered after a crash) never resets a chord that is filling, has fired or has failed.
KEYS[1] the chord's state (hash)
ARGV[1] how many member results it waits for
ARGV[2] the callback's lane (0, 1 or 2)
ARGV[3] the callback message up to its arguments: a JSON object's text, without its closing brace
ARGV[4] the callback message after the results list: its other arguments, then `]}`
ARGV[5] the shape of the results list, each `#` the next result (`[#,[#,#]]`); '' for a flat list
ARGV[6] how long the chord's keys are kept (ms); each member's result renews it
Returns 1 if the chord was opened, 0 if it existed already. ]=]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'open', 'size', ARGV[1], 'lane', ARGV[2], 'head', ARGV[3],
  'tail', ARGV[4], 'shape', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
