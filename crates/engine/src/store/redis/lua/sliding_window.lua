      -- Sliding window counter (algorithm 2): state "2 start previous
      -- current". Mirrors sliding_window.rs: the previous window weighs in
      -- whole milliseconds. capacity = limit; its parameter: the count cap.
      if algorithm == "2" then
        local count_cap = ARGV[at + 6] + 0
        extra = 1
        -- Fresh, unless the stored windows are not expired; then rolled to
        -- now.
        local start, previous, current = now - fmod(now, period), 0, 0
        local kept_start, kept_previous, kept_current =
          match(stored or "", "^2 (%d+) (%d+) (%d+)$")
        if kept_start then
          kept_start = kept_start + 0
          if kept_start + 2 * period > now then
            if start == kept_start + period then
              previous = kept_current + 0
            elseif start <= kept_start then
              start, previous = kept_start, kept_previous + 0
              current = kept_current + 0
            end
          end
        end
        -- The previous window's weight (weighted_previous), rounded up: the
        -- same now before and after consuming.
        local period_ms = period / 1000
        local elapsed = max(now - start, 0)
        elapsed = min((elapsed - fmod(elapsed, 1000)) / 1000, period_ms)
        local weighted = previous * (period_ms - elapsed)
        local rest = fmod(weighted, period_ms)
        weighted = (weighted - rest) / period_ms + (rest > 0 and 1 or 0)
        over = needed > max(capacity - (weighted + current), 0)
          or needed == 0 and weighted + current > capacity
        if cost > 0 and (allowed == 1 and not over or count_denied) then
          current = min(current + cost, count_cap)
        end
        remaining = max(capacity - (weighted + current), 0)
        local window_end = start + period
        if current > 0 then
          reset_after = max(window_end + period - now, 0)
        elseif previous > 0 then
          reset_after = max(window_end - now, 0)
        else
          reset_after = 0
        end
        if wait > remaining then
          -- When enough of a window's weight has slid out for `wait` hits
          -- (offset_where_weight_fits): the previous window's, or if the
          -- current window alone is too full, the current one's.
          local weight, allowance, from = previous, capacity - (current + wait), start
          if allowance < 0 then
            weight, allowance, from = current, capacity - wait, window_end
          end
          local offset = 0
          if weight > 0 then
            local fits = allowance * period_ms
            offset = 1000 * max(period_ms - (fits - fmod(fits, weight)) / weight, 0)
          end
          retry_after = max(from + offset - now, 0)
        end
        expires_at = start + 2 * period
        state = format("2 %d %d %d", start, previous, current)
      end
