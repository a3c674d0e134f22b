import {
  type CheckLimitResponse,
  CheckLimitResponse_Code,
  type LimitStatus,
  LimitStatus_Failure,
} from "./gen/ratelimit/v1/ratelimit.js";
import type { RatelimitdUnavailableError } from "./errors.js";

/** `UNAVAILABLE`: denied, and not because of the client (answer 503, never 429). */
export type DecisionCode = "OK" | "OVER_LIMIT" | "UNAVAILABLE";

/**
 * Who decided: the service; the on-error policy (`fallback`) because the
 * service could not; or the denial cache (`cache`), repeating a denial of
 * the same request until its retry-after.
 */
export type DecisionSource = "service" | "fallback" | "cache";

/** Whether a request may go through, and what to tell its client. */
export interface Decision {
  readonly allowed: boolean;
  readonly code: DecisionCode;
  /** Until a request of the same cost would be admitted; 0 when allowed. */
  readonly retryAfterMs: number;
  /** Until the limit the headers describe is fully replenished. */
  readonly resetAfterMs: number;
  /** Hits left of the limit the headers describe; undefined when no limit applied. */
  readonly remaining: number | undefined;
  /** That limit's size; undefined when no limit applied. */
  readonly limit: number | undefined;
  /**
   * The HTTP headers the service said to send (`X-RateLimit-*`,
   * `Retry-After`, `RateLimit`, `RateLimit-Policy`), verbatim; empty when
   * the service did not decide.
   */
  readonly headers: Readonly<Record<string, string>>;
  /** One status per limit that applied. */
  readonly statuses: readonly LimitStatus[];
  /** A failure policy (the service's or this client's) decided some limit. */
  readonly degraded: boolean;
  /** A shadow-mode limit would have denied. */
  readonly shadowed: boolean;
  readonly source: DecisionSource;
  /** Why the service did not decide (source `fallback`). */
  readonly error: RatelimitdUnavailableError | undefined;
}

/**
 * The limit the headers describe, chosen as the service chooses it: among
 * enforced limits (not shadow, decided by a store), a denying one with the
 * longest wait, else the one with the least remaining.
 */
export function tightest(statuses: readonly LimitStatus[]): LimitStatus | undefined {
  let best: LimitStatus | undefined;
  const rank = (s: LimitStatus) => [s.overLimit ? 0 : 1, -s.retryAfterMs, s.remaining];
  for (const status of statuses) {
    if (status.shadow || (status.failure !== LimitStatus_Failure.FAILURE_NONE && status.failure !== LimitStatus_Failure.LOCAL)) {
      continue;
    }
    if (best === undefined || compare(rank(status), rank(best)) < 0) best = status;
  }
  return best;
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i += 1) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/** The service's answer as a decision. */
export function fromResponse(response: CheckLimitResponse): Decision {
  const described = tightest(response.statuses);
  return {
    allowed: response.allowed,
    code: response.allowed ? "OK" : response.code === CheckLimitResponse_Code.UNAVAILABLE ? "UNAVAILABLE" : "OVER_LIMIT",
    retryAfterMs: response.retryAfterMs,
    resetAfterMs: response.resetAfterMs,
    remaining: described?.remaining,
    limit: described?.limit,
    headers: response.headers,
    statuses: response.statuses,
    degraded: response.degraded,
    shadowed: response.shadowed,
    source: "service",
    error: undefined,
  };
}

const NO_LIMIT = {
  retryAfterMs: 0,
  resetAfterMs: 0,
  remaining: undefined,
  limit: undefined,
  headers: {},
  statuses: [],
  degraded: true,
  shadowed: false,
  source: "fallback",
} as const;

/** `onError: 'open'`: allowed, degraded, no headers. */
export function openDecision(error: RatelimitdUnavailableError): Decision {
  return { ...NO_LIMIT, allowed: true, code: "OK", error };
}

/** `onError: 'closed'`: denied with code UNAVAILABLE (a 503, never a 429). */
export function closedDecision(error: RatelimitdUnavailableError): Decision {
  return { ...NO_LIMIT, allowed: false, code: "UNAVAILABLE", error };
}
