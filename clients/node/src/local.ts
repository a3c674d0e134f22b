import type { Decision } from "./decision.js";
import { tightest } from "./decision.js";
import type { RatelimitdUnavailableError } from "./errors.js";
import {
  type CheckLimitRequest,
  type DeclaredLimit,
  type LimitStatus,
  LimitStatus_Algorithm,
  LimitStatus_Failure,
} from "./gen/ratelimit/v1/ratelimit.js";
import { ipCountingKey } from "./ip.js";
import { parseRate } from "./rate.js";

/** Counters kept before expired windows are swept. */
const SWEEP_AT = 10_000;

interface Window {
  readonly start: number;
  readonly end: number;
  count: number;
}

/**
 * `onError: 'local'`: decides a request in process while the service is
 * down, from the limits it declares (the policy's rules are the service's
 * and unknown here). Each limit gets `ceil(count / replicas)` hits per
 * window (its burst instead of its count for a token bucket or GCRA whose
 * burst is larger), counted exactly in fixed windows of its period aligned
 * to the Unix epoch, whatever its algorithm: the approximation is a fixed
 * window (up to twice the rate across a window edge; no refill within a
 * window, no sliding smoothing). Like the service, it decides all limits at once
 * (denied: nothing consumed, except by `countDenied` limits), and shadow
 * limits never deny. The `ip` key part counts by `clientIp`, else
 * `peerIp` (this process cannot resolve `X-Forwarded-For` through the
 * policy's trusted proxies), IPv6 per /64.
 */
export class LocalLimiter {
  readonly #replicas: number;
  readonly #windows = new Map<string, Window>();

  constructor(replicas: number) {
    this.#replicas = Math.max(1, Math.floor(replicas));
  }

  decide(request: CheckLimitRequest, error: RatelimitdUnavailableError, now: number): Decision {
    this.#sweep(now);
    const cost = request.cost ?? 1;
    const needed = Math.max(cost, 1);
    const applied = request.limits.flatMap((limit) => {
      const rate = parseRate(limit.rate);
      const key = countingKey(request, limit);
      if (rate === undefined || key === undefined) return [];
      const allowance = Math.ceil(capacity(limit, rate.count) / this.#replicas);
      const start = Math.floor(now / rate.periodMs) * rate.periodMs;
      let window = this.#windows.get(key);
      if (window === undefined || window.start !== start) {
        window = { start, end: start + rate.periodMs, count: 0 };
        this.#windows.set(key, window);
      }
      return [{ limit, allowance, window, over: window.count + needed > allowance }];
    });
    const allowed = applied.every(({ limit, over }) => limit.shadow || !over);
    for (const { limit, window } of applied) {
      if (allowed || limit.countDenied) window.count += cost;
    }
    const statuses = applied.map(({ limit, allowance, window, over }): LimitStatus => ({
      rule: limit.name,
      limitName: "default",
      algorithm: limit.algorithm,
      limit: allowance,
      windowMs: window.end - window.start,
      remaining: Math.max(0, allowance - window.count),
      resetAfterMs: window.count > 0 ? window.end - now : 0,
      retryAfterMs: over ? window.end - now : 0,
      overLimit: over,
      shadow: limit.shadow,
      tier: "",
      failure: LimitStatus_Failure.LOCAL,
      backend: "",
    }));
    const described = tightest(statuses);
    return {
      allowed,
      code: allowed ? "OK" : "OVER_LIMIT",
      retryAfterMs: allowed ? 0 : (described?.retryAfterMs ?? 0),
      resetAfterMs: described?.resetAfterMs ?? 0,
      remaining: described?.remaining,
      limit: described?.limit,
      headers: {},
      statuses,
      degraded: true,
      shadowed: applied.some(({ limit, over }) => limit.shadow && over),
      source: "fallback",
      error,
    };
  }

  #sweep(now: number): void {
    if (this.#windows.size < SWEEP_AT) return;
    for (const [key, window] of this.#windows) {
      if (window.end <= now) this.#windows.delete(key);
    }
  }
}

/** What a window admits: the rate's count, or a larger token bucket or GCRA burst. */
function capacity(limit: DeclaredLimit, count: number): number {
  const bursty = limit.algorithm === LimitStatus_Algorithm.TOKEN_BUCKET || limit.algorithm === LimitStatus_Algorithm.GCRA;
  return bursty ? Math.max(count, limit.burst) : count;
}

/**
 * The counter of `limit` for `request`: its domain, name, algorithm and
 * key values; undefined when a key part has no value (the limit does not
 * apply, as at the service).
 */
function countingKey(request: CheckLimitRequest, limit: DeclaredLimit): string | undefined {
  const values: string[] = [];
  for (const part of limit.key) {
    const value = part
      .split("|")
      .map((source) => keyValue(request, source))
      .find((candidate) => candidate !== undefined && candidate !== "");
    if (value === undefined) return undefined;
    values.push(value);
  }
  const algorithm = limit.algorithm === LimitStatus_Algorithm.ALGORITHM_UNSPECIFIED ? "" : String(limit.algorithm);
  return JSON.stringify([request.domain, limit.name, algorithm, ...values]);
}

function keyValue(request: CheckLimitRequest, source: string): string | undefined {
  switch (source) {
    case "ip": {
      const address = request.clientIp || request.peerIp;
      return address === "" ? undefined : ipCountingKey(address);
    }
    case "user":
      return request.user;
    case "api_key":
      return request.apiKey;
    case "path":
      return request.path;
    case "method":
      return request.method.toUpperCase();
  }
  if (source.startsWith("header:")) {
    const name = source.slice("header:".length).toLowerCase();
    return Object.entries(request.headers).find(([header]) => header.toLowerCase() === name)?.[1];
  }
  if (source.startsWith("descriptor:")) {
    const key = source.slice("descriptor:".length);
    return request.descriptors.find((entry) => entry.key === key)?.value;
  }
  return undefined;
}
