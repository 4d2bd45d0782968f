--[=[ Records the final outcome of one chord member and, when that completes the chord, enqueues the
callback in the same step. Only the call that records the last missing result enqueues it, and
recording and enqueueing cannot be separated by a crash: the callback is enqueued exactly once,
however often members are redelivered and however many finish at the same instant. A member whose
slot is filled already, or whose chord is over, changes nothing.
The first failure ends the chord: the callback message is enqueued carrying the failure
(`chordError`), so the callback's worker records the chord's FAILURE and runs its errbacks.
KEYS[1] the chord's state (hash: state open|fired|failed, size, lane, head, tail, shape)
KEYS[2] the chord's results (hash: slot → result JSON); its fields are the set of finished members
KEYS[3] KEYS[4] KEYS[5] the callback queue's lane streams 0, 1, 2
ARGV[1] the member's slot, from 0
ARGV[2] 'ok', or 'fail'
ARGV[3] the member's result (JSON), or for 'fail' the failure (JSON: index, taskId, task, error)
ARGV[4] how long the chord's keys are kept (ms), renewed on each result
ARGV[5] the largest message the callback may be (bytes)
Returns 1 recorded, 2 recorded and the callback enqueued, 3 the chord failed and its callback was
enqueued to fail, 0 nothing done (slot filled already, or the chord is over), -1 no such chord
(never opened, or expired), -2 the slot is out of range. ]=]
local chord = redis.call('HMGET', KEYS[1], 'state', 'size', 'lane', 'head', 'tail', 'shape')
local state, size, lane, head, tail, shape = chord[1], tonumber(chord[2]), chord[3], chord[4], chord[5], chord[6]
if not state then return -1 end
if state ~= 'open' then return 0 end
local slot = tonumber(ARGV[1])
if not slot or slot < 0 or slot >= size then return -2 end
local stream = KEYS[3 + tonumber(lane)]

local function close(final)
  redis.call('HSET', KEYS[1], 'state', final)
  redis.call('HDEL', KEYS[1], 'head', 'tail', 'shape')
  redis.call('DEL', KEYS[2])
end

local function fail(failure)
  redis.call('XADD', stream, '*', 'm', head .. '"chordError":' .. failure .. ',"args":[[]' .. tail)
  close('failed')
  return 3
end

if ARGV[2] == 'fail' then return fail(ARGV[3]) end

if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if redis.call('HLEN', KEYS[2]) < size then return 1 end

-- Complete: the results in slot order (HGETALL, not HMGET: unpack() cannot take 10,000 arguments).
local all = redis.call('HGETALL', KEYS[2])
local results = {}
for i = 1, #all, 2 do results[tonumber(all[i]) + 1] = all[i + 1] end
local list
if shape == nil or shape == '' then
  list = '[' .. table.concat(results, ',', 1, size) .. ']'
else
  local n = 0
  list = string.gsub(shape, '#', function()
    n = n + 1
    return results[n]
  end)
end
local message = head .. '"args":[' .. list .. tail
if #message > tonumber(ARGV[5]) then
  return fail(string.format(
    '{"index":-1,"error":{"name":"ChordResultsTooLarge","code":"CHORD_TOO_LARGE","message":"the callback with its %d results is %d bytes, over the %d-byte message limit: have members return references (IDs, URLs), not data"}}',
    size, #message, tonumber(ARGV[5])))
end
redis.call('XADD', stream, '*', 'm', message)
close('fired')
return 2
