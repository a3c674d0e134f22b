/**
 * The other side of a 429: `fetch` that waits as long as the server asks
 * (`Retry-After`) and tries again, within bounds. No Node-only imports:
 * it runs in browsers too.
 */

/**
 * A retry budget shared by calls: each call earns `ratio` of a retry (up
 * to `max` saved), each retry spends one, so retries stay a bounded
 * fraction of the traffic when a server keeps refusing (no retry storm).
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #max: number;
  #tokens: number;

  constructor(options: { readonly ratio?: number; readonly max?: number } = {}) {
    this.#ratio = options.ratio ?? 0.2;
    this.#max = options.max ?? 10;
    this.#tokens = this.#max;
  }

  /** Retries available now. */
  get available(): number {
    return Math.floor(this.#tokens);
  }

  /** A call was made. */
  deposit(): void {
    this.#tokens = Math.min(this.#max, this.#tokens + this.#ratio);
  }

  /** Takes one retry, if there is one. */
  withdraw(): boolean {
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Shared by every call that brings no budget of its own. */
const defaultBudget = new RetryBudget();

export interface RetryOptions {
  /** Retries of one call at most. Default 2. */
  readonly maxRetries?: number;
  /**
   * The longest wait honoured, in ms: a server asking for more gets its
   * response back at once (waiting less would only earn another refusal).
   * Default 10000.
   */
  readonly maxRetryAfterMs?: number;
  /** A random 0..jitterMs is added to each wait, so clients do not return together. Default 1000. */
  readonly jitterMs?: number;
  /** Retry POST, PATCH and other non-idempotent methods too. Default false. */
  readonly retryNonIdempotent?: boolean;
  /** Default: one budget for the whole program. */
  readonly budget?: RetryBudget;
  /** Default: the global `fetch`. */
  readonly fetch?: typeof fetch;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/**
 * `fetch(input, init)`, retried on 429 (and on 503 with `Retry-After`)
 * after `Retry-After` (seconds or an HTTP date) plus jitter, while the
 * request is idempotent (or `retryNonIdempotent`), its body can be sent
 * again, the wait is within `maxRetryAfterMs`, retries are left in
 * `maxRetries` and the budget, and `init.signal` is not aborted (an abort
 * during a wait rejects with its reason). Otherwise the response is
 * returned as it came.
 */
export async function rateLimitAwareFetch(
  input: string | URL | Request,
  init: RequestInit = {},
  options: RetryOptions = {},
): Promise<Response> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const budget = options.budget ?? defaultBudget;
  const maxRetries = options.maxRetries ?? 2;
  const method = (init.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
  const retryable =
    (IDEMPOTENT.has(method) || options.retryNonIdempotent === true) && !(init.body instanceof ReadableStream);
  budget.deposit();
  for (let attempt = 0; ; attempt += 1) {
    const response = await fetchImpl(input instanceof Request ? input.clone() : input, init);
    const waitMs = retryAfterMs(response);
    if (
      !retryable ||
      waitMs === undefined ||
      attempt >= maxRetries ||
      waitMs > (options.maxRetryAfterMs ?? 10_000) ||
      !budget.withdraw()
    ) {
      return response;
    }
    await response.body?.cancel();
    await sleep(waitMs + Math.random() * (options.jitterMs ?? 1_000), init.signal ?? undefined);
  }
}

/** How long a refusal asks to wait, if it is one that says. */
function retryAfterMs(response: Response): number | undefined {
  if (response.status !== 429 && response.status !== 503) return undefined;
  const header = response.headers.get("retry-after")?.trim();
  if (header === undefined || header === "") return undefined;
  if (/^\d+$/.test(header)) return Number(header) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
