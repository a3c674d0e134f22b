/** The client's circuit breaker, in the vocabulary of the service's own. */
export type BreakerState = "CLOSED" | "OPEN" | "HALF_OPEN";

export interface BreakerOptions {
  /** Consecutive failed calls that open it. Default 5. */
  readonly failureThreshold?: number;
  /** How long it stays open the first time, in ms. Default 1000. */
  readonly recoveryTimeoutMs?: number;
  /** Each failed probe doubles the open time, up to this. Default 30000. */
  readonly maxRecoveryTimeoutMs?: number;
}

/**
 * Stops paying the deadline on every request while the service is down:
 * after `failureThreshold` consecutive failures no call is made for
 * `recoveryTimeoutMs`; then one call probes (HALF_OPEN) while the others
 * keep being answered by the on-error policy. A successful probe closes it;
 * a failed one opens it again for twice as long (at most
 * `maxRecoveryTimeoutMs`).
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #initialOpenMs: number;
  readonly #maxOpenMs: number;
  #state: BreakerState = "CLOSED";
  #failures = 0;
  #openMs: number;
  #openUntil = 0;
  #probing = false;

  constructor(options: BreakerOptions = {}) {
    this.#threshold = Math.max(1, options.failureThreshold ?? 5);
    this.#initialOpenMs = options.recoveryTimeoutMs ?? 1_000;
    this.#maxOpenMs = Math.max(this.#initialOpenMs, options.maxRecoveryTimeoutMs ?? 30_000);
    this.#openMs = this.#initialOpenMs;
  }

  /** The state now (an open breaker whose time is up reads HALF_OPEN). */
  state(now: number): BreakerState {
    return this.#state === "OPEN" && now >= this.#openUntil ? "HALF_OPEN" : this.#state;
  }

  /** Whether a call may be made now; if it is the probe, it is taken. */
  tryAcquire(now: number): boolean {
    switch (this.state(now)) {
      case "CLOSED":
        return true;
      case "OPEN":
        return false;
      case "HALF_OPEN":
        if (this.#probing) return false;
        this.#state = "HALF_OPEN";
        this.#probing = true;
        return true;
    }
  }

  /** The service answered (whatever it said). */
  onSuccess(): void {
    this.#state = "CLOSED";
    this.#failures = 0;
    this.#openMs = this.#initialOpenMs;
    this.#probing = false;
  }

  /** The service failed a call made after `tryAcquire`. */
  onFailure(now: number): void {
    if (this.#state === "HALF_OPEN") {
      this.#openMs = Math.min(this.#openMs * 2, this.#maxOpenMs);
      this.#open(now);
      return;
    }
    this.#failures += 1;
    if (this.#state === "CLOSED" && this.#failures >= this.#threshold) this.#open(now);
  }

  #open(now: number): void {
    this.#state = "OPEN";
    this.#openUntil = now + this.#openMs;
    this.#probing = false;
  }
}
