      -- GCRA (algorithm 5): state "5 tat". Mirrors gcra.rs. capacity = burst;
      -- its parameter: the emission interval (µs).
      if algorithm == "5" then
        local interval = ARGV[at + 6] + 0
        extra = 1
        -- A stored TAT already past is the same as a fresh one: now.
        local tat = now
        local kept_tat = match(stored or "", "^5 (%d+)$")
        if kept_tat then tat = max(kept_tat + 0, now) end
        local tolerance = capacity * interval
        local room = max(tolerance - (tat - now), 0)
        over = needed > (room - fmod(room, interval)) / interval
        if cost > 0 and (allowed == 1 and not over or count_denied) then
          tat = tat + cost * interval
        end
        room = max(tolerance - (tat - now), 0)
        remaining = (room - fmod(room, interval)) / interval
        reset_after = tat - now
        retry_after = max(tat + wait * interval - (now + tolerance), 0)
        expires_at = tat
        state = format("5 %d", tat)
      end
