--[[ Deletes messages of one lane stream that no consumer has been given yet, up to a given id, and
moves the consumer group past them, atomically: a message published meanwhile is either deleted or
left to be delivered, never skipped by the group.
KEYS[1] a lane stream
ARGV[1] the consumer group
ARGV[2] the last id to delete (the lane's last id when the purge began, so a purge ends)
ARGV[3] the most messages to delete in one call
Returns the number deleted; fewer than ARGV[3] means none are left up to ARGV[2]. ]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local group
for _, fields in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = {}
  for i = 1, #fields, 2 do g[fields[i]] = fields[i + 1] end
  if g['name'] == ARGV[1] then group = g end
end
-- Without a group, nothing has been delivered: every message is waiting.
local from = '-'
if group then from = '(' .. group['last-delivered-id'] end
local entries = redis.call('XRANGE', KEYS[1], from, ARGV[2], 'COUNT', tonumber(ARGV[3]))
if #entries == 0 then return 0 end
local ids = {}
for i, entry in ipairs(entries) do ids[i] = entry[1] end
-- unpack() takes a few thousand values at most: delete in chunks, whatever ARGV[3] is.
for from = 1, #ids, 1000 do redis.call('XDEL', KEYS[1], unpack(ids, from, math.min(from + 999, #ids))) end
if group then
  -- Past what was deleted, counting it as read, so the group's lag and entries-read stay exact.
  if type(group['entries-read']) == 'number' then
    redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ids[#ids], 'ENTRIESREAD', group['entries-read'] + #ids)
  else
    redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ids[#ids])
  end
end
return #ids
