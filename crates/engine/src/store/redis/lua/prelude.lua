-- ratelimitd: shared arithmetic. Every value is an integer below 2^53 (the
-- engine checks this when a limit is made), so doubles hold them exactly;
-- division goes through math.fmod, which is exact, never through a rounded
-- quotient.
local fmod, max, min = math.fmod, math.max, math.min

local function div_floor(a, b)
  return (a - fmod(a, b)) / b
end

local function div_ceil(a, b)
  local rest = fmod(a, b)
  if rest == 0 then return a / b end
  return (a - rest) / b + 1
end

local function window_start(now, period)
  return now - fmod(now, period)
end

local U32_MAX = 4294967295

local algorithms = {}
