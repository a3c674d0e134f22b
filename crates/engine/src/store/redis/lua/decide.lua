-- Decides every check of one request atomically. Mirrors decision.rs.
--
-- KEYS: one counter per check (distinct).
-- ARGV[1]: now in µs since the epoch, or "redis" for Redis's own TIME.
-- ARGV[2 + 10(i-1) ...]: check i as algorithm, capacity, period, a, b, c,
--   cost, needed (hits that must fit: decision.rs's Check::needed),
--   enforced (1/0), count_denied (1/0).
-- State: a string of space-separated integers, prefixed by the algorithm, so
-- a limit moved to another algorithm starts afresh (as in the in-process
-- store). Every key is written
-- with a PX TTL reaching its expiry (or deleted when already expired): no key
-- lives forever.
-- Returns: {allowed, then per check: over_limit, limit, remaining,
--   reset_after, retry_after}.
local now
if ARGV[1] == "redis" then
  local time = redis.call("TIME")
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
else
  now = tonumber(ARGV[1])
end

local checks = {}
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 10
  local check = {
    algorithm = tonumber(ARGV[at]),
    capacity = tonumber(ARGV[at + 1]),
    period = tonumber(ARGV[at + 2]),
    a = tonumber(ARGV[at + 3]),
    b = tonumber(ARGV[at + 4]),
    c = tonumber(ARGV[at + 5]),
    cost = tonumber(ARGV[at + 6]),
    needed = tonumber(ARGV[at + 7]),
    enforced = ARGV[at + 8] == "1",
    count_denied = ARGV[at + 9] == "1",
  }
  check.signature = ARGV[at]
  check.run = algorithms[check.algorithm]
  checks[i] = check
end

local function decode(check, stored)
  if stored then
    local signature, rest = string.match(stored, "^([^ ]*) ?(.*)$")
    if signature == check.signature then
      local state = {}
      for number in string.gmatch(rest, "%S+") do state[#state + 1] = tonumber(number) end
      -- An expired state is a fresh one, as the in-process store treats it.
      if check.run.expires_at(check, state) > now then return state end
    end
  end
  return check.run.fresh(check, now)
end

local function encode(check, state)
  local parts = {check.signature}
  for i = 1, #state do parts[#parts + 1] = string.format("%.0f", state[i]) end
  return table.concat(parts, " ")
end

local states, over = {}, {}
local allowed = 1
for i, check in ipairs(checks) do
  local state = decode(check, redis.call("GET", KEYS[i]))
  check.run.refresh(check, state, now)
  states[i] = state
  local needed = check.needed
  over[i] = needed > check.run.available(check, state, now)
    or (needed == 0 and check.run.overdrawn ~= nil and check.run.overdrawn(check, state, now))
  if over[i] and check.enforced then allowed = 0 end
end

local result = {allowed}
for i, check in ipairs(checks) do
  local state, run = states[i], check.run
  local admitted = allowed == 1 and not over[i]
  if check.cost > 0 and (admitted or check.count_denied) then
    run.consume(check, state, now, check.cost)
  end
  local cost = max(check.cost, 1)
  local remaining = run.available(check, state, now)
  local retry_after
  if admitted and check.cost > 0 then
    retry_after = 0
  elseif cost <= remaining then
    retry_after = 0
  elseif cost > check.capacity then
    retry_after = check.period
  else
    retry_after = run.retry_after(check, state, now, cost)
  end
  local expires_at = run.expires_at(check, state)
  if expires_at > now then
    redis.call("SET", KEYS[i], encode(check, state), "PX", div_ceil(expires_at - now, 1000))
  else
    redis.call("DEL", KEYS[i])
  end
  local base = #result
  result[base + 1] = over[i] and 1 or 0
  result[base + 2] = check.capacity
  result[base + 3] = remaining
  result[base + 4] = run.reset_after(check, state, now)
  result[base + 5] = retry_after
end
return result
