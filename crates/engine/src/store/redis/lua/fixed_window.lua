-- Fixed window (algorithm 1): state {start, count}. Mirrors fixed_window.rs.
-- Parameters: capacity = limit, period.
algorithms[1] = {
  fresh = function(p, now) return {window_start(now, p.period), 0} end,
  refresh = function(p, s, now)
    local start = window_start(now, p.period)
    if start > s[1] then s[1] = start; s[2] = 0 end
  end,
  available = function(p, s, now) return max(p.capacity - s[2], 0) end,
  overdrawn = function(p, s, now) return s[2] > p.capacity end,
  consume = function(p, s, now, cost) s[2] = min(s[2] + cost, U32_MAX) end,
  reset_after = function(p, s, now)
    if s[2] == 0 then return 0 end
    return max(s[1] + p.period - now, 0)
  end,
  retry_after = function(p, s, now, cost) return max(s[1] + p.period - now, 0) end,
  expires_at = function(p, s) return s[1] + p.period end,
}
