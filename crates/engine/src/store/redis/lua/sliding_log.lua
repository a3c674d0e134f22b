      -- Sliding log (algorithm 3): state "3 total at1 hits1 at2 hits2 ...",
      -- oldest first. Mirrors sliding_log.rs. capacity = limit; no
      -- parameters of its own. The log is never split into numbers: the
      -- records that left are skipped with one anchored match each, the last
      -- is found at the end, and the new state is one concatenation of the
      -- new total, the kept records and the new hits.
      if algorithm == "3" then
        extra = 0
        -- Fresh (empty), unless stored; then the hits that left are dropped:
        -- the kept records are stored[from .. upto].
        local total, from, upto = 0, 1, 0
        local kept_total, first = match(stored or "", "^3 (%d+)()")
        if kept_total then
          total, from, upto = kept_total + 0, first, #stored
          while true do
            local logged_at, hits, after = match(stored, "^ (%d+) (%d+)()", from)
            if not logged_at or logged_at + period > now then break end
            total, from = total - hits, after
          end
        end
        -- The last record, if kept, is within the last 40 characters: an
        -- instant below 2^53 has 16 digits, a record's hits at most 5 (a log
        -- holds at most 10,000).
        local last, _, last_at, last_hits
        if from <= upto then
          last, _, last_at, last_hits = find(stored, " (%d+) (%d+)$", -40)
        end
        over = needed > max(capacity - total, 0)
        local logged = ""
        if cost > 0 and (allowed == 1 and not over or count_denied) then
          -- Hits at the last record's instant join it.
          local hits = cost
          if last and last_at + 0 == now then
            upto, hits = last - 1, last_hits + cost
          end
          logged, last_at, total = format(" %d %d", now, hits), now, total + cost
        end
        local head = format("3 %d", total)
        state = head .. sub(stored or "", from, upto) .. logged
        remaining = max(capacity - total, 0)
        if #state == #head then
          reset_after, expires_at = 0, 0
        else
          expires_at = last_at + period
          reset_after = max(expires_at - now, 0)
        end
        if wait > remaining then
          -- When enough of the oldest hits have left for `wait` to fit.
          retry_after = 0
          local still, record = total, #head + 1
          while true do
            local logged_at, hits, after = match(state, "^ (%d+) (%d+)()", record)
            if not logged_at then break end
            still = still - hits
            if still + wait <= capacity then
              retry_after = max(logged_at + period - now, 0)
              break
            end
            record = after
          end
        end
      end
