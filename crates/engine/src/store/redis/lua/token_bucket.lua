-- Token bucket (algorithm 4): state {units, updated}. Mirrors token_bucket.rs.
-- Parameters: capacity, period, a = initial tokens, b = units per token,
-- c = units gained per µs.
local function full_units(p) return p.capacity * p.b end

local function time_to_reach(p, s, units)
  return div_ceil(max(units - s[1], 0), p.c)
end

algorithms[4] = {
  fresh = function(p, now) return {p.a * p.b, now} end,
  refresh = function(p, s, now)
    if now <= s[2] then return end
    local to_full = time_to_reach(p, s, full_units(p))
    if now - s[2] >= to_full then
      s[1] = full_units(p); s[2] = s[2] + to_full
    else
      s[1] = s[1] + (now - s[2]) * p.c; s[2] = now
    end
  end,
  available = function(p, s, now) return div_floor(s[1], p.b) end,
  consume = function(p, s, now, cost) s[2] = now; s[1] = s[1] - cost * p.b end,
  reset_after = function(p, s, now) return time_to_reach(p, s, full_units(p)) end,
  retry_after = function(p, s, now, cost) return time_to_reach(p, s, cost * p.b) end,
  expires_at = function(p, s)
    local full_at = s[2] + time_to_reach(p, s, full_units(p))
    if p.a == p.capacity then return full_at end
    return full_at + div_ceil(full_units(p), p.c)
  end,
}
