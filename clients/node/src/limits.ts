import { type DeclaredLimit as DeclaredLimitMessage, LimitStatus_Algorithm } from "./gen/ratelimit/v1/ratelimit.js";

/** The algorithms a declared limit may name, as the policy file spells them. */
export type AlgorithmName = "fixed_window" | "sliding_window" | "sliding_log" | "token_bucket" | "gcra";

const ALGORITHMS: Readonly<Record<AlgorithmName, LimitStatus_Algorithm>> = {
  fixed_window: LimitStatus_Algorithm.FIXED_WINDOW,
  sliding_window: LimitStatus_Algorithm.SLIDING_WINDOW,
  sliding_log: LimitStatus_Algorithm.SLIDING_LOG,
  token_bucket: LimitStatus_Algorithm.TOKEN_BUCKET,
  gcra: LimitStatus_Algorithm.GCRA,
};

/**
 * A limit the caller declares with its request, decided by the service
 * together with the policy's rules (the policy's `declared:` section must
 * accept the domain; its overrides win).
 */
export interface Limit {
  /** The counter family (a view, a group, a scope); the status's `rule`. */
  readonly name: string;
  /** `N/period`: `10/m`, `100/5m`, `1000/h`; `0/m` blocks. */
  readonly rate: string;
  /**
   * What to count by, in the policy's key language: `ip`, `user`,
   * `api_key`, `path`, `method`, `header:<name>`, `descriptor:<key>`, or
   * alternatives such as `user|ip`. Absent: one counter for the domain.
   */
  readonly key?: string | readonly string[];
  /** Absent: the policy's `settings.default_algorithm`. */
  readonly algorithm?: AlgorithmName;
  /** Token bucket capacity or GCRA burst; absent: the rate's count. */
  readonly burst?: number;
  /** Token bucket tokens at start; absent: `burst`. */
  readonly initialTokens?: number;
  /** Count denied hits too (fixed and sliding windows). */
  readonly countDenied?: boolean;
  /** Count and report, never deny. */
  readonly shadow?: boolean;
}

/** The wire form of `limit`. */
export function declaredLimit(limit: Limit): DeclaredLimitMessage {
  return {
    name: limit.name,
    key: typeof limit.key === "string" ? [limit.key] : [...(limit.key ?? [])],
    rate: limit.rate,
    algorithm: limit.algorithm === undefined ? LimitStatus_Algorithm.ALGORITHM_UNSPECIFIED : ALGORITHMS[limit.algorithm],
    burst: limit.burst ?? 0,
    initialTokens: limit.initialTokens,
    countDenied: limit.countDenied ?? false,
    shadow: limit.shadow ?? false,
  };
}
