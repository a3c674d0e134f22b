import type { Decision } from "./decision.js";
import { CheckLimitRequest } from "./gen/ratelimit/v1/ratelimit.js";

/**
 * Denials remembered at most: when full, expired ones are dropped, and a
 * new denial is not remembered if none had expired.
 */
const MAX_ENTRIES = 10_000;

interface Entry {
  readonly decision: Decision;
  readonly until: number;
}

/**
 * Answers a request the service just denied, identical to the byte, until
 * its retry-after, without a call (`source: 'cache'`): under attack the
 * same client repeats the same request. Opt-in: the client cannot know
 * whether a policy rule counts denied hits (`count_denied`), which such
 * repeats would then no longer feed; requests declaring such a limit are
 * never cached.
 */
export class DenialCache {
  readonly #entries = new Map<string, Entry>();

  /** The cached denial of `request`, its wait shortened to what is left. */
  get(request: CheckLimitRequest, now: number): Decision | undefined {
    const key = fingerprint(request);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.until <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return { ...entry.decision, source: "cache", retryAfterMs: entry.until - now };
  }

  /** Remembers `decision` for `request` if it is a denial worth repeating. */
  remember(request: CheckLimitRequest, decision: Decision, now: number): void {
    if (decision.code !== "OVER_LIMIT" || decision.retryAfterMs <= 0) return;
    if (request.limits.some((limit) => limit.countDenied)) return;
    if (this.#entries.size >= MAX_ENTRIES) {
      for (const [key, entry] of this.#entries) {
        if (entry.until <= now) this.#entries.delete(key);
      }
      if (this.#entries.size >= MAX_ENTRIES) return;
    }
    this.#entries.set(fingerprint(request), { decision, until: now + decision.retryAfterMs });
  }
}

/** The serialized request, headers in name order (a map's order is not meaningful). */
function fingerprint(request: CheckLimitRequest): string {
  const headers = Object.fromEntries(Object.entries(request.headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return Buffer.from(CheckLimitRequest.encode({ ...request, headers }).finish()).toString("base64");
}
