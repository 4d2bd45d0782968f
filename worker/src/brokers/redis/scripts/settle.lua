--[[ Settles a batch of deliveries of one queue in one call, with the results they carry: what a
worker finished in one tick. Atomic, so a result and the acknowledgement of its delivery are written
together or not at all: a worker killed at any moment never leaves a call acknowledged without its
result, nor a result without its call being acknowledged later.
KEYS[1] KEYS[2] KEYS[3] the queue's lane streams 0, 1, 2
KEYS[4] the queue's delayed set
KEYS[5] the queue's dead-letter stream
KEYS[6] the queue's history stream: one entry per outcome recorded, oldest first, fields 'i' (the task
        id), 'o' (how the attempt ended, JSON: its result record, or the outcome the worker wrote) and
        either 'm' (the message as received, JSON) or 'ms' (its size, when it was left out)
KEYS[7] the queue's history index: a hash, task id → the id of its latest history entry
KEYS[8] the queue's history order: a list of '<entry id> <task id>', oldest first, what trimming reads
KEYS[9..] the result keys, one per 'R', 'S' or 'T' operation, in order
ARGV[1] the consumer group
ARGV[2] the most dead letters to keep, about: the stream is trimmed oldest first with MAXLEN ~ (whole
        nodes of it go, so it may hold up to stream-node-max-entries more), so a flood of bad input
        cannot fill Redis
ARGV[3] the most history entries to keep: after a call that adds n entries, the oldest beyond it go,
        up to 100 + n of them (so a history over a bound just lowered shrinks to it over a few calls)
ARGV[4] the oldest history entry to keep, as an age in ms: a call that adds n entries removes up to
        100 + 2n older than that, oldest first (bounded work per call, and a history that shrinks back
        within its age while it is written)
ARGV[5..] operations, each a letter followed by its fields:
  'R' ttl (ms) result (JSON) — store a result under the next result key, with its expiry, and publish
      it on the channel of the key's name (a result's channel is its key: keys.ts)
  'A' lane entry-id — acknowledge and delete the entry
  'S' lane entry-id ttl result — 'R' and 'A' in one: a call that succeeded (or failed for good)
  'Q' lane entry-id due lane message — acknowledge it and enqueue the message, on its lane now when due
      (at or before the server's time), else in the delayed set (see requeue.lua)
  'D' lane entry-id message reason detail deliveries at size sha256 — acknowledge it and add a dead
      letter: the message as received or only its head, the reason (malformed, unsupported-version,
      too-large, unknown-task, poison, unrecordable), the detail in words, how many times it was
      delivered, the time (epoch ms), the message's size in bytes, and the whole message's SHA-256
      when only its head is kept ('' when it is whole)
  'T' lane entry-id ttl result task-id message message-size — 'S', and a history entry of the result
      (as the outcome) and the message, as 'H' has them
  'H' task-id message outcome message-size — a history entry: message '' leaves it out (its size kept)
Returns the number of entries settled. ]]
local CHUNK = 1000
local group = ARGV[1]
local done = { {}, {}, {} }
local now
local results = 8
-- The history entries written: task id, entry id, … (indexed once, after the operations), and their
-- order ('<entry id> <task id>').
local indexed = {}
local order = {}
local function remember(task, message, outcome, size)
  local at
  if message ~= '' then
    at = redis.call('XADD', KEYS[6], '*', 'i', task, 'o', outcome, 'm', message)
  else
    at = redis.call('XADD', KEYS[6], '*', 'i', task, 'o', outcome, 'ms', size)
  end
  indexed[#indexed + 1] = task
  indexed[#indexed + 1] = at
  order[#order + 1] = at .. ' ' .. task
end
local function serverTime()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
-- An entry to acknowledge and delete, by lane (0, 1, 2) and id.
local function settled(lane, id)
  local ids = done[tonumber(lane) + 1]
  ids[#ids + 1] = id
end
-- A result under the next result key, with its expiry, published on the key's name.
local function store(ttl, result)
  results = results + 1
  redis.call('SET', KEYS[results], result, 'PX', ttl)
  redis.call('PUBLISH', KEYS[results], result)
end
local i = 5
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'R' then
    store(ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'S' then
    store(ARGV[i + 3], ARGV[i + 4])
    settled(ARGV[i + 1], ARGV[i + 2])
    i = i + 5
  elseif op == 'T' then
    store(ARGV[i + 3], ARGV[i + 4])
    settled(ARGV[i + 1], ARGV[i + 2])
    remember(ARGV[i + 5], ARGV[i + 6], ARGV[i + 4], ARGV[i + 7])
    i = i + 8
  elseif op == 'A' then
    settled(ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'Q' then
    settled(ARGV[i + 1], ARGV[i + 2])
    local due = tonumber(ARGV[i + 3])
    if due <= serverTime() then
      redis.call('XADD', KEYS[1 + tonumber(ARGV[i + 4])], '*', 'm', ARGV[i + 5])
    else
      redis.call('ZADD', KEYS[4], due, ARGV[i + 4] .. ARGV[i + 5])
    end
    i = i + 6
  elseif op == 'D' then
    settled(ARGV[i + 1], ARGV[i + 2])
    local fields = { 'm', ARGV[i + 3], 'reason', ARGV[i + 4], 'detail', ARGV[i + 5], 'deliveries', ARGV[i + 6],
      'at', ARGV[i + 7], 'source', ARGV[i + 2], 'size', ARGV[i + 8] }
    if ARGV[i + 9] ~= '' then
      fields[#fields + 1] = 'sha256'
      fields[#fields + 1] = ARGV[i + 9]
    end
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
    i = i + 10
  elseif op == 'H' then
    remember(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    i = i + 5
  else
    return redis.error_reply('settle.lua: unknown operation ' .. tostring(op) .. ' at argument ' .. i)
  end
end
-- Commands on many ids at once, in chunks: unpack() takes a few thousand values at most.
local function inChunks(command, key, values, step)
  local replies = {}
  for from = 1, #values, step do
    local reply = redis.call(command, key, unpack(values, from, math.min(from + step - 1, #values)))
    if type(reply) == 'table' then
      for _, value in ipairs(reply) do replies[#replies + 1] = value end
    end
  end
  return replies
end
-- The oldest n history entries go: the index forgets a task only if it pointed at the entry removed (a
-- task with a later entry, a retry's next attempt, keeps that one).
local function forget(n)
  local gone = redis.call('LPOP', KEYS[8], n)
  if not gone then return end
  local entries, tasks = {}, {}
  for k, item in ipairs(gone) do
    local space = string.find(item, ' ', 1, true)
    entries[k] = string.sub(item, 1, space - 1)
    tasks[k] = string.sub(item, space + 1)
  end
  local current = inChunks('HMGET', KEYS[7], tasks, CHUNK)
  local stale = {}
  for k = 1, #tasks do
    if current[k] == entries[k] then stale[#stale + 1] = tasks[k] end
  end
  inChunks('HDEL', KEYS[7], stale, CHUNK)
  redis.call('XTRIM', KEYS[6], 'MINID', entries[#entries])
  redis.call('XDEL', KEYS[6], entries[#entries])
end
if #order > 0 then
  inChunks('HSET', KEYS[7], indexed, 2 * CHUNK)
  inChunks('RPUSH', KEYS[8], order, CHUNK)
  -- Beyond the count, the oldest go: as many as were added (so the count holds), and when the bound was
  -- lowered, up to 100 more a call (bounded work per call, as for the age below).
  local excess = redis.call('LLEN', KEYS[8]) - tonumber(ARGV[3])
  if excess > 0 then forget(math.min(excess, 100 + #order)) end
  -- Entries older than the age bound, oldest first, at most 100 + 2n of them: the oldest alone is read
  -- unless it is old.
  local cutoff = serverTime() - tonumber(ARGV[4])
  local first = redis.call('LINDEX', KEYS[8], 0)
  if first and tonumber(string.match(first, '^(%d+)')) < cutoff then
    local old = 0
    for _, item in ipairs(redis.call('LRANGE', KEYS[8], 0, 99 + 2 * #order)) do
      if tonumber(string.match(item, '^(%d+)')) >= cutoff then break end
      old = old + 1
    end
    forget(old)
  end
end
-- unpack() takes a few thousand values at most: acknowledge in chunks.
local count = 0
for lane = 1, 3 do
  local ids = done[lane]
  for from = 1, #ids, CHUNK do
    local to = math.min(from + CHUNK - 1, #ids)
    redis.call('XACK', KEYS[lane], group, unpack(ids, from, to))
    redis.call('XDEL', KEYS[lane], unpack(ids, from, to))
  end
  count = count + #ids
end
return count
