-- ratelimitd: decides every check of one request atomically. Mirrors
-- decision.rs. Assembled from this file (arguments, the loop over checks),
-- one file per algorithm (its branch of the loop), and decide.lua (the
-- verdict, the writes and the reply).
--
-- KEYS: one counter per check (distinct).
-- ARGV[1]: now in µs since the epoch, or "redis" for Redis's own TIME.
-- Then per check: algorithm, capacity, period, cost, needed (hits that must
--   fit: decision.rs's Check::needed), flags (1 enforced + 2 count_denied),
--   and the algorithm's own parameters (none to three, read by its branch).
-- State: a string of space-separated integers, prefixed by the algorithm, so
-- a limit moved to another algorithm starts afresh (as in the in-process
-- store). Every key is written with a PX TTL reaching its expiry (or deleted
-- when already expired): no key lives forever.
-- Returns: {allowed, then per check: over_limit, remaining, reset_after,
--   retry_after}.
--
-- Cost: Redis runs this whole body on every EVALSHA, so it defines no
-- functions (each definition would build a closure on every call): every
-- algorithm is straight-line code on locals, and the only tables are the
-- reply and, with several checks, what pass 1 holds for the writes.
--
-- Arithmetic: every value is an integer below 2^53 (the engine checks this
-- when a limit is made), so doubles hold them exactly; division goes through
-- math.fmod, which is exact, never through a rounded quotient. Arguments and
-- stored fields become numbers by `+ 0` (Lua's own coercion of a decimal
-- string, cheaper than a call to tonumber).
local fmod, max, min = math.fmod, math.max, math.min
local find, format, match, sub = string.find, string.format, string.match, string.sub
local U32_MAX = 4294967295

local now
if ARGV[1] == "redis" then
  local time = redis.call("TIME")
  now = time[1] * 1000000 + time[2]
else
  now = ARGV[1] + 0
end

-- A check consumes only when every enforced check fits. Pass 1 decides each
-- check as if the request were allowed. A single check is then right (its
-- branch consumes before its own verdict sets `allowed`) and is written at
-- once. Several are held: pass 2 writes what pass 1 decided when every
-- enforced check fitted, or else decides them all again (from the same
-- stored states) knowing the request is denied, and writes that.
local checks = #KEYS
local allowed = 1
-- The reply, sized for one check: a constructor allocates its slots at once.
local result = {0, 0, 0, 0, 0}
-- With several checks, per check: the stored state, the new one, its TTL.
local held = checks > 1 and {} or nil
for pass = 1, 2 do
  local at = 2
  for i = 1, checks do
    -- What is written: the key's new state and its TTL in milliseconds (0:
    -- expired), knowing what was stored.
    local stored, state, ttl
    if pass == 2 and allowed == 1 then
      stored, state, ttl = held[i][1], held[i][2], held[i][3]
    else
      local algorithm = ARGV[at]
      local capacity = ARGV[at + 1] + 0
      local period = ARGV[at + 2] + 0
      local cost = ARGV[at + 3] + 0
      local needed = ARGV[at + 4] + 0
      local flags = ARGV[at + 5]
      local enforced = flags == "1" or flags == "3"
      local count_denied = flags == "2" or flags == "3"
      if pass == 1 then
        stored = redis.call("GET", KEYS[i])
      else
        stored = held[i][1]
      end
      -- The hits a report asks about (decision.rs: report(cost.max(1))).
      local wait = cost > 0 and cost or 1
      -- Set by the algorithm's branch, besides `state`: how many parameters
      -- of its own follow the flags; whether the check is over; after
      -- consuming, what remains, when the limit is whole again, when `wait`
      -- hits would fit (at least whenever they do not now), and when the
      -- state expires.
      local extra, over, remaining, reset_after, retry_after, expires_at
