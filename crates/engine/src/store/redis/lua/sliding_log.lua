-- Sliding log (algorithm 3): state {total, at1, hits1, at2, hits2, ...},
-- oldest first. Mirrors sliding_log.rs. Parameters: capacity = limit, period.
algorithms[3] = {
  fresh = function(p, now) return {0} end,
  refresh = function(p, s, now)
    local keep = 2
    while s[keep] ~= nil and s[keep] + p.period <= now do
      s[1] = s[1] - s[keep + 1]
      keep = keep + 2
    end
    if keep > 2 then
      local kept = {s[1]}
      for i = keep, #s do kept[#kept + 1] = s[i] end
      for i = 1, #s do s[i] = kept[i] end
    end
  end,
  available = function(p, s, now) return max(p.capacity - s[1], 0) end,
  consume = function(p, s, now, cost)
    if s[#s - 1] == now and #s > 1 then
      s[#s] = s[#s] + cost
    else
      s[#s + 1] = now; s[#s + 1] = cost
    end
    s[1] = s[1] + cost
  end,
  reset_after = function(p, s, now)
    if #s == 1 then return 0 end
    return max(s[#s - 1] + p.period - now, 0)
  end,
  retry_after = function(p, s, now, cost)
    local still = s[1]
    for i = 2, #s, 2 do
      still = still - s[i + 1]
      if still + cost <= p.capacity then return max(s[i] + p.period - now, 0) end
    end
    return 0
  end,
  expires_at = function(p, s)
    if #s == 1 then return 0 end
    return s[#s - 1] + p.period
  end,
}
