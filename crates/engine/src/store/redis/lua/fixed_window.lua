      -- Fixed window (algorithm 1): state "1 start count". Mirrors
      -- fixed_window.rs. capacity = limit; no parameters of its own.
      if algorithm == "1" then
        extra = 0
        -- Fresh, unless the stored window is this one (not expired, not
        -- rolled).
        local start, count = now - fmod(now, period), 0
        local kept_start, kept_count = match(stored or "", "^1 (%d+) (%d+)$")
        if kept_start then
          kept_start = kept_start + 0
          if kept_start + period > now and kept_start >= start then
            start, count = kept_start, kept_count + 0
          end
        end
        over = needed > max(capacity - count, 0)
          or needed == 0 and count > capacity
        if cost > 0 and (allowed == 1 and not over or count_denied) then
          count = min(count + cost, U32_MAX)
        end
        remaining = max(capacity - count, 0)
        expires_at = start + period
        reset_after = count == 0 and 0 or max(expires_at - now, 0)
        retry_after = max(expires_at - now, 0)
        state = format("1 %d %d", start, count)
      end
