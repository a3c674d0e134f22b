-- Sliding window counter (algorithm 2): state {start, previous, current}.
-- Mirrors sliding_window.rs: the previous window weighs in whole milliseconds.
-- Parameters: capacity = limit, period (µs), a = count cap.
local function weighted_previous(p, s, now)
  local period = p.period / 1000
  local elapsed = min(div_floor(max(now - s[1], 0), 1000), period)
  return div_ceil(s[2] * (period - elapsed), period)
end

local function offset_where_weight_fits(p, previous, allowance)
  if previous == 0 then return 0 end
  local period = p.period / 1000
  return 1000 * max(period - div_floor(allowance * period, previous), 0)
end

algorithms[2] = {
  fresh = function(p, now) return {window_start(now, p.period), 0, 0} end,
  refresh = function(p, s, now)
    local start = window_start(now, p.period)
    if start == s[1] + p.period then
      s[1] = start; s[2] = s[3]; s[3] = 0
    elseif start > s[1] then
      s[1] = start; s[2] = 0; s[3] = 0
    end
  end,
  available = function(p, s, now)
    return max(p.capacity - (weighted_previous(p, s, now) + s[3]), 0)
  end,
  overdrawn = function(p, s, now)
    return weighted_previous(p, s, now) + s[3] > p.capacity
  end,
  consume = function(p, s, now, cost) s[3] = min(s[3] + cost, p.a) end,
  reset_after = function(p, s, now)
    local window_end = s[1] + p.period
    if s[3] > 0 then return max(window_end + p.period - now, 0) end
    if s[2] > 0 then return max(window_end - now, 0) end
    return 0
  end,
  retry_after = function(p, s, now, cost)
    local allowance = p.capacity - (s[3] + cost)
    if allowance >= 0 then
      return max(s[1] + offset_where_weight_fits(p, s[2], allowance) - now, 0)
    end
    local window_end = s[1] + p.period
    return max(window_end + offset_where_weight_fits(p, s[3], p.capacity - cost) - now, 0)
  end,
  expires_at = function(p, s) return s[1] + 2 * p.period end,
}
