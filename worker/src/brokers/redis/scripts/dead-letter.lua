--[[ Moves one delivered entry to the dead-letter stream with the reason, and acknowledges it.
KEYS[1] the lane stream the entry was read from
KEYS[2] the queue's dead-letter stream
ARGV[1] the consumer group
ARGV[2] the entry id
ARGV[3] the message as received
ARGV[4] the reason (malformed, unsupported-version, too-large, unknown-task, poison, abandoned)
ARGV[5] the detail, in words
ARGV[6] how many times it was delivered
ARGV[7] the time (epoch ms)
Returns the dead letter's id. ]]
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[3], 'reason', ARGV[4], 'detail', ARGV[5],
  'deliveries', ARGV[6], 'at', ARGV[7], 'source', ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id
