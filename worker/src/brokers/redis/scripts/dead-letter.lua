--[[ Moves one delivered entry to the dead-letter stream with the reason, and acknowledges it. The
stream is trimmed to about ARGV[8] letters, oldest first (MAXLEN ~: whole nodes of the stream go, so it
may hold up to stream-node-max-entries more), so a flood of bad input cannot fill Redis.
KEYS[1] the lane stream the entry was read from
KEYS[2] the queue's dead-letter stream
ARGV[1] the consumer group
ARGV[2] the entry id
ARGV[3] the message as received, or only its head (see ARGV[10])
ARGV[4] the reason (malformed, unsupported-version, too-large, unknown-task, poison, unrecordable)
ARGV[5] the detail, in words
ARGV[6] how many times it was delivered
ARGV[7] the time (epoch ms)
ARGV[8] the most dead letters to keep (about)
ARGV[9] the message's size in bytes
ARGV[10] the whole message's SHA-256 when ARGV[3] is only its head, else ''
Returns the dead letter's id. ]]
local id
if ARGV[10] ~= '' then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'm', ARGV[3], 'reason', ARGV[4],
    'detail', ARGV[5], 'deliveries', ARGV[6], 'at', ARGV[7], 'source', ARGV[2], 'size', ARGV[9], 'sha256', ARGV[10])
else
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'm', ARGV[3], 'reason', ARGV[4],
    'detail', ARGV[5], 'deliveries', ARGV[6], 'at', ARGV[7], 'source', ARGV[2], 'size', ARGV[9])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id
