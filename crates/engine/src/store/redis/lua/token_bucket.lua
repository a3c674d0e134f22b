      -- Token bucket (algorithm 4): state "4 units updated". Mirrors
      -- token_bucket.rs. Its parameters: the initial tokens, the units per
      -- token, and the units gained per µs.
      if algorithm == "4" then
        local initial = ARGV[at + 6] + 0
        local token_units = ARGV[at + 7] + 0
        local gain = ARGV[at + 8] + 0
        extra = 3
        local full = capacity * token_units
        -- Time to refill an empty bucket, beyond reaching full (expires_at).
        local refill = 0
        if initial ~= capacity then
          refill = fmod(full, gain)
          refill = (full - refill) / gain + (refill > 0 and 1 or 0)
        end
        -- Fresh, unless the stored bucket is not expired; then refilled to now.
        local units, updated = initial * token_units, now
        local kept_units, kept_updated = match(stored or "", "^4 (%d+) (%d+)$")
        if kept_units then
          kept_units, kept_updated = kept_units + 0, kept_updated + 0
          local short = max(full - kept_units, 0)
          local rest = fmod(short, gain)
          local to_full = (short - rest) / gain + (rest > 0 and 1 or 0)
          if kept_updated + to_full + refill > now then
            units, updated = kept_units, kept_updated
            if now > updated then
              if now - updated >= to_full then
                units, updated = full, updated + to_full
              else
                units, updated = units + (now - updated) * gain, now
              end
            end
          end
        end
        over = needed > (units - fmod(units, token_units)) / token_units
        if cost > 0 and (allowed == 1 and not over or count_denied) then
          units, updated = units - cost * token_units, now
        end
        remaining = (units - fmod(units, token_units)) / token_units
        -- time_to_reach: to full, and to `wait` tokens.
        local short = max(full - units, 0)
        local rest = fmod(short, gain)
        reset_after = (short - rest) / gain + (rest > 0 and 1 or 0)
        short = max(wait * token_units - units, 0)
        rest = fmod(short, gain)
        retry_after = (short - rest) / gain + (rest > 0 and 1 or 0)
        expires_at = updated + reset_after + refill
        state = format("4 %d %d", units, updated)
      end
