      -- Every branch above has set `over`; an enforced check over its limit
      -- denies the request (after the branch: a single check consumed
      -- seeing `allowed` still 1, which only its own verdict could change).
      if over and enforced then allowed = 0 end
      if allowed == 1 and not over and cost > 0 or wait <= remaining then
        retry_after = 0
      elseif wait > capacity then
        retry_after = period
      end
      local base = 1 + (i - 1) * 4
      result[base + 1] = over and 1 or 0
      result[base + 2] = remaining
      result[base + 3] = reset_after
      result[base + 4] = retry_after
      -- Whole milliseconds, rounded up.
      ttl = 0
      if expires_at > now then
        local rest = fmod(expires_at - now, 1000)
        ttl = (expires_at - now - rest) / 1000 + (rest > 0 and 1 or 0)
      end
      if checks > 1 and pass == 1 then held[i] = {stored, state, ttl} end
      at = at + 6 + extra
    end
    if checks == 1 or pass == 2 then
      if ttl > 0 then
        redis.call("SET", KEYS[i], state, "PX", ttl)
      elseif stored then
        -- (A key GET found missing needs no DEL.)
        redis.call("DEL", KEYS[i])
      end
    end
  end
  if checks == 1 then break end
end
result[1] = allowed
return result
