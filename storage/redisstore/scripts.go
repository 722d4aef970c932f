package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts behind every atomic operation. Each runs as one EVALSHA
// (go-redis falls back to EVAL once if the server lacks the script), and
// every key a script touches is passed in KEYS and shares the user's hash
// tag, so each is one atomic step on one Cluster slot.
//
// Times are Unix microseconds. Numbers a script computes are written with
// string.format('%.0f', ...) because Lua's default formatting would round
// them.
//
// The scripts that change state take a request id and remember the last
// one they applied: go-redis resends a command whose connection broke
// before the reply came, and the resend must answer like the original
// instead of applying twice (a step "reused" by its own request, a check
// reserved twice, a recovery code "not found" after its own use). A
// script that changes one record keeps the id in it (field rq); one whose
// record may be deleted meanwhile keeps it in a marker key of its own
// (requestKey) that lives a minute.

var beginScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'v') == '1' then return 'VERIFIED' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'v', '0', 's', ARGV[2], 'k', ARGV[3], 'l', '0', 'c', ARGV[4], 'va', '0', 'x', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 'OK'`)

var confirmScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'id', 'v', 'x', 'rq')
if not h[1] or h[1] ~= ARGV[1] then return 'NOTFOUND' end
if h[2] == '1' then
  if h[4] == ARGV[4] then return 'OK' end
  return 'VERIFIED'
end
if tonumber(h[3]) <= tonumber(ARGV[3]) then return 'EXPIRED' end
redis.call('HSET', KEYS[1], 'v', '1', 'va', ARGV[3], 'x', '0', 'l', ARGV[2], 'rq', ARGV[4])
redis.call('PERSIST', KEYS[1])
return 'OK'`)

// acceptScript sets LastStep of the enrollment (KEYS[1]) to ARGV[1] and
// clears the failure state (KEYS[2]) together, under request id ARGV[2].
// It answers 0 (OK), 1 (no verified enrollment) or 2 (step reused). A
// resend answers 0 and clears nothing: checks reserved since the
// original are not its to clear.
var acceptScript = newHotScript(`
local h = redis.call('HMGET', KEYS[1], 'v', 'l', 'rq')
if h[1] ~= '1' then return 1 end
if h[3] == ARGV[2] then return 0 end
if tonumber(h[2]) >= tonumber(ARGV[1]) then return 2 end
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'rq', ARGV[2])
redis.call('DEL', KEYS[2])
return 0`)

var resealScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'id', 'k')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then return 'NOTFOUND' end
redis.call('HSET', KEYS[1], 's', ARGV[3], 'k', ARGV[4])
return 'OK'`)

// putCodeScript stores a code (KEYS[1]) and adds its purpose (ARGV[4],
// encoded as in codeKey) to the user's code index (KEYS[2]), whose TTL
// is raised to the code's (ARGV[3], ms) if shorter, so the index
// outlives every code it lists. ForgetUser finds the user's codes there.
var putCodeScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'x', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 'OK'`)

// forgetScript deletes every key in KEYS but the third, all of one user:
// KEYS[1] is the user's code index, and ARGV the index members the caller
// read and built the code keys in KEYS from; KEYS[2] the user's
// credentials, whose generations it fences in KEYS[3] (the fence hash,
// kept) so that ForgetUser can free their claims. If the index no longer
// holds exactly ARGV (a code of another purpose was stored meanwhile) it
// changes nothing and answers RETRY.
var forgetScript = redis.NewScript(`
if redis.call('SCARD', KEYS[1]) ~= #ARGV then return 'RETRY' end
for i = 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then return 'RETRY' end
end
local f = redis.call('HGETALL', KEYS[2])
for i = 1, #f, 2 do
  if string.sub(f[i], 1, 1) == 'g' then
    redis.call('HSET', KEYS[3], f[i + 1], string.sub(f[i], 2))
    redis.call('PERSIST', KEYS[3])
  end
end
for i = 1, #KEYS do
  if i ~= 3 then redis.call('DEL', KEYS[i]) end
end
return 'OK'`)

// consumeScript leaves a short-lived tombstone naming the request that
// used the code, so a resent request is answered OK once more.
var consumeScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'h', 'x', 'used')
if h[3] then
  if h[3] == ARGV[3] then return 'OK' end
  return 'NOTFOUND'
end
if not h[1] then return 'NOTFOUND' end
if tonumber(h[2]) <= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) return 'EXPIRED' end
if h[1] ~= ARGV[1] then return 'MISMATCH' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'used', ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
return 'OK'`)

// reserveScript is storage.NextAttempt in Lua. KEYS: the failure state
// (fields f, u, t: Failures, LockedUntil, LastAt), the request marker and,
// for ReserveFactor, the enrollment. ARGV: now (µs), the nanoseconds of now
// below the microsecond, MaxFailures, Base (ns), Max (ns), and the TTL the
// state gets beyond its lock (ms, at least AttemptIdle).
//
// The lock is Base doubled once per reservation beyond MaxFailures while
// below max(Base, Max), then capped there: at most 63 doublings (Base >=
// 1ns, the cap < 2^63ns), so it saturates and never overflows whatever the
// count. It is exact (to the nanosecond, then truncated to the µs as Go
// does) while the lock is below 2^53ns, 104 days; beyond, within 1µs.
//
// The marker holds the state the reservation produced, so a resend
// answers exactly that even if a success cleared the state meanwhile. A
// locked answer changes nothing and leaves no marker. Each reservation
// sets the state to expire AttemptIdle after max(LockedUntil, now) (S27).
//
// It answers one string: the status word (OK or LOCKED) and the state
// (Failures, LockedUntil, LastAt), separated by spaces. For
// ReserveFactor, whenever a check was reserved, it answers an array
// instead: that string, and the enrollment read by one HMGET (fields id,
// v, s, k, l, c, va, x) whether it exists or not (S26). The HMGET's
// answer goes back as it is: Redis runs one script at a time, and
// building a string of it in Lua cost more of that time than the rest
// of the script.
var reserveScript = newHotScript(`
local st, f, u, t = 'OK'
local m = redis.call('GET', KEYS[2])
if m then
  f, u, t = string.match(m, '^(-?%d+):(-?%d+):(-?%d+)$')
else
  local h = redis.call('HMGET', KEYS[1], 'f', 'u', 't')
  f, u, t = h[1] or '0', h[2] or '0', h[3] or '0'
  local now, lu = tonumber(ARGV[1]), tonumber(u)
  if now < lu then
    st = 'LOCKED'
  else
    local n, mf, d, cap = tonumber(f) + 1, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
    if cap < d then cap = d end
    if n >= mf and d > 0 then
      local k = n - mf
      while k > 0 and d < cap do d, k = d * 2, k - 1 end
      if d > cap then d = cap end
      local ns = d + tonumber(ARGV[2])
      lu = now + (ns - math.fmod(ns, 1000)) / 1000
    end
    local ttl = tonumber(ARGV[6])
    if lu > now then ttl = ttl + math.ceil((lu - now) / 1000) end
    f, u, t = string.format('%.0f', n), string.format('%.0f', lu), ARGV[1]
    redis.call('HSET', KEYS[1], 'f', f, 'u', u, 't', t)
    redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ttl))
    redis.call('SET', KEYS[2], f .. ':' .. u .. ':' .. t, 'PX', 60000)
  end
end
local head = st .. ' ' .. f .. ' ' .. u .. ' ' .. t
if not KEYS[3] or st ~= 'OK' then return head end
return {head, redis.call('HMGET', KEYS[3], 'id', 'v', 's', 'k', 'l', 'c', 'va', 'x')}`)

// sendScript is storage.NextSend in Lua, so the check and the update are
// one atomic step.
var sendScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'w', 'l', 'n')
local w, l, n = tonumber(h[1] or '0'), tonumber(h[2] or '0'), tonumber(h[3] or '0')
local now, gap, win, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if l ~= 0 and now - l < gap then return l + gap - now end
if w == 0 or now >= w + win then w, n = now, 0 end
if max > 0 and n >= max then return w + win - now end
redis.call('HSET', KEYS[1], 'w', string.format('%.0f', w), 'l', ARGV[1], 'n', n + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0`)

var releaseScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'l', 'n')
if h[1] == ARGV[1] and tonumber(h[2] or '0') > 0 then
  redis.call('HSET', KEYS[1], 'l', '0', 'n', tonumber(h[2]) - 1)
end
return 'OK'`)

// useRecoveryScript removes a code once per request id (KEYS[2] marks
// it), so a resent request is answered like the original.
var useRecoveryScript = redis.NewScript(`
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], '1', 'PX', 60000)
  return 'OK'
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'OK' end
return 'NOTFOUND'`)

// The credential scripts (see credentials.go for the protocol). A user's
// credentials are one hash (credentialsKey) whose fields are a letter and
// the raw credential ID: g the generation of the claim the credential was
// added under, n the name, d the data, s the sign count, c and u the
// creation and last use (µs), q the request id of the last use. The
// user's fence hash (fenceKey) maps claim generations to credential IDs:
// an add under a fenced generation is refused, and ForgetUser and
// DeleteCredential free the claims it lists.

// addCredentialScript adds credential ARGV[1] (generation ARGV[2], name,
// data, sign count, created, last used) to the hash KEYS[1], unless the
// generation is fenced in KEYS[2] (FENCED) or the user holds the ID under
// another generation (EXISTS and that generation). A resend answers OK.
var addCredentialScript = redis.NewScript(`
local id, gen = ARGV[1], ARGV[2]
local g = redis.call('HGET', KEYS[1], 'g' .. id)
if g == gen then return {'OK'} end
if redis.call('HEXISTS', KEYS[2], gen) == 1 then return {'FENCED'} end
if g then return {'EXISTS', g} end
redis.call('HSET', KEYS[1], 'g' .. id, gen, 'n' .. id, ARGV[3], 'd' .. id, ARGV[4], 's' .. id, ARGV[5],
  'c' .. id, ARGV[6], 'u' .. id, ARGV[7])
return {'OK'}`)

// useCredentialScript is the sign-count rule of UseCredential: the count
// ARGV[2] must be above the stored one unless both are 0. It keeps the
// request id (ARGV[5]) so that a resend answers OK.
var useCredentialScript = redis.NewScript(`
local id = ARGV[1]
local s = redis.call('HGET', KEYS[1], 's' .. id)
if not s then return 'NOTFOUND' end
if redis.call('HGET', KEYS[1], 'q' .. id) == ARGV[5] then return 'OK' end
local old, new = tonumber(s), tonumber(ARGV[2])
if new <= old and (new ~= 0 or old ~= 0) then return 'SIGNCOUNT' end
redis.call('HSET', KEYS[1], 's' .. id, ARGV[2], 'd' .. id, ARGV[3], 'u' .. id, ARGV[4], 'q' .. id, ARGV[5])
return 'OK'`)

// deleteCredentialScript removes credential ARGV[1] from the hash
// KEYS[1], fences its generation in KEYS[2] (kept until its claim is
// freed) and answers the generation, or an empty string if there was
// none.
var deleteCredentialScript = redis.NewScript(`
local id = ARGV[1]
local g = redis.call('HGET', KEYS[1], 'g' .. id)
if not g then return '' end
redis.call('HDEL', KEYS[1], 'g' .. id, 'n' .. id, 'd' .. id, 's' .. id, 'c' .. id, 'u' .. id, 'q' .. id)
redis.call('HSET', KEYS[2], g, id)
redis.call('PERSIST', KEYS[2])
return g`)

// releaseCredentialScript answers the generation under which the user
// holds credential ARGV[1] in KEYS[1]; if none, it fences generation
// ARGV[2] in KEYS[2] (so an add under it that arrives late is refused)
// and answers an empty string.
var releaseCredentialScript = redis.NewScript(`
local g = redis.call('HGET', KEYS[1], 'g' .. ARGV[1])
if g then return g end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('PERSIST', KEYS[2])
return ''`)

// claimScript claims the credential ID of KEYS[1] for the user whose
// owner prefix is ARGV[1], as value ARGV[2], unless another user's claim
// is there (EXISTS). A claim of the same user is replaced by the new
// generation.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then return 'EXISTS' end
redis.call('SET', KEYS[1], ARGV[2])
return 'OK'`)

// swapClaimScript sets the claim KEYS[1] to ARGV[2] (deletes it if empty)
// if its value is ARGV[1], and answers 1 if it did.
var swapClaimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1`)
