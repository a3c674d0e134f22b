-- GCRA (algorithm 5): state {tat}. Mirrors gcra.rs.
-- Parameters: capacity = burst, period, a = emission interval (µs).
algorithms[5] = {
  fresh = function(p, now) return {now} end,
  refresh = function(p, s, now) s[1] = max(s[1], now) end,
  available = function(p, s, now)
    local backlog = max(s[1] - now, 0)
    return div_floor(max(p.capacity * p.a - backlog, 0), p.a)
  end,
  consume = function(p, s, now, cost) s[1] = s[1] + cost * p.a end,
  reset_after = function(p, s, now) return max(s[1] - now, 0) end,
  retry_after = function(p, s, now, cost)
    return max(s[1] + cost * p.a - (now + p.capacity * p.a), 0)
  end,
  expires_at = function(p, s) return s[1] end,
}
