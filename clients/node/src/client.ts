import { readFileSync } from "node:fs";
import {
  type ChannelCredentials,
  type ChannelOptions,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { type BreakerOptions, type BreakerState, CircuitBreaker } from "./breaker.js";
import { closedDecision, type Decision, fromResponse, openDecision } from "./decision.js";
import { DenialCache } from "./denial-cache.js";
import { fromServiceError, RatelimitdUnavailableError } from "./errors.js";
import {
  type CheckLimitRequest,
  type CheckLimitResponse,
  type DescriptorEntry,
  RateLimiterClient,
} from "./gen/ratelimit/v1/ratelimit.js";
import { normalizeIp } from "./ip.js";
import { declaredLimit, type Limit } from "./limits.js";
import { LocalLimiter } from "./local.js";

/**
 * What decides when the service cannot (it is unreachable, misses the
 * deadline, or the breaker is open): `open` allows, `closed` denies with
 * code UNAVAILABLE (frameworks answer 503), `local` decides in process from
 * the request's declared limits, a function decides as it likes.
 */
export type OnError =
  | "open"
  | "closed"
  | "local"
  | ((error: RatelimitdUnavailableError, request: CheckLimitRequest) => Decision | Promise<Decision>);

export interface RatelimitdClientOptions {
  /** `host:port` of the service's gRPC listener (any grpc-js target). */
  readonly target: string;
  /** The policy domain of requests that name none. */
  readonly domain: string;
  /** Deadline of each call, in ms. Default 50. */
  readonly timeoutMs?: number;
  /**
   * Default: plaintext (`credentials.createInsecure()`); `tlsCredentials()`
   * reads TLS (and mutual TLS) credentials from PEM files.
   */
  readonly credentials?: ChannelCredentials;
  /**
   * A bearer token sent with every call (`authorization: Bearer …`), naming
   * one of the service's `auth:` identities.
   */
  readonly token?: string;
  /** grpc-js channel options (keepalive, service config ...). */
  readonly channelOptions?: ChannelOptions;
  /** Default `open`. */
  readonly onError?: OnError;
  /** `local`: the limits are divided by this many app replicas. Default 1. */
  readonly localReplicas?: number;
  readonly breaker?: BreakerOptions;
  /** Repeat denials locally until their retry-after. Default false. */
  readonly denialCache?: boolean;
}

/** PEM files for `tlsCredentials`. */
export interface TlsFiles {
  /** The CA to trust; default: the system's roots. */
  readonly caFile?: string;
  /** A client certificate for mutual TLS (with `keyFile`). */
  readonly certFile?: string;
  /** The client certificate's private key. */
  readonly keyFile?: string;
}

/** TLS (mutual TLS with a certificate and key) credentials from PEM files. */
export function tlsCredentials(files: TlsFiles = {}): ChannelCredentials {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new Error("certFile and keyFile go together");
  }
  const read = (path: string | undefined): Buffer | null => (path === undefined ? null : readFileSync(path));
  return grpcCredentials.createSsl(read(files.caFile), read(files.keyFile), read(files.certFile));
}

/** What a request is, as the policy sees it. Every field is optional. */
export interface CheckRequest {
  /** Default: the client's domain. */
  readonly domain?: string;
  readonly descriptors?: readonly DescriptorEntry[];
  /** An address already resolved; wins over `peerIp`/`forwardedFor`. */
  readonly clientIp?: string;
  /** What the socket saw (the client or the last proxy). */
  readonly peerIp?: string;
  /** The raw `X-Forwarded-For` received; the service resolves it. */
  readonly forwardedFor?: string;
  readonly user?: string;
  readonly apiKey?: string;
  readonly method?: string;
  /** Without the query string. */
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface CheckOptions {
  /** Hits to consume; 0 asks without consuming. Default 1. */
  readonly cost?: number;
  readonly limits?: readonly Limit[];
}

/**
 * A client of ratelimitd's `CheckLimit`. Create one per process and share
 * it: it holds one channel, the breaker, and the local fallback's counters.
 */
export class RatelimitdClient {
  readonly domain: string;
  readonly #rpc: RateLimiterClient;
  readonly #timeoutMs: number;
  readonly #onError: OnError;
  readonly #breaker: CircuitBreaker;
  readonly #local: LocalLimiter;
  readonly #denials: DenialCache | undefined;
  readonly #metadata: Metadata;

  constructor(options: RatelimitdClientOptions) {
    this.domain = options.domain;
    this.#rpc = new RateLimiterClient(
      options.target,
      options.credentials ?? grpcCredentials.createInsecure(),
      options.channelOptions,
    );
    this.#timeoutMs = options.timeoutMs ?? 50;
    this.#onError = options.onError ?? "open";
    this.#breaker = new CircuitBreaker(options.breaker);
    this.#local = new LocalLimiter(options.localReplicas ?? 1);
    this.#denials = options.denialCache === true ? new DenialCache() : undefined;
    this.#metadata = new Metadata();
    if (options.token !== undefined) this.#metadata.set("authorization", `Bearer ${options.token}`);
  }

  /** The circuit breaker's state now. */
  get breakerState(): BreakerState {
    return this.#breaker.state(Date.now());
  }

  /**
   * Decides `request`: one `CheckLimit` call (or none, when the denial
   * cache or an open breaker answers). Resolves with the on-error policy's
   * decision when the service fails; rejects with a
   * `RatelimitdRequestError` when the service refuses the request
   * (INVALID_ARGUMENT, FAILED_PRECONDITION) or its caller (UNAUTHENTICATED,
   * PERMISSION_DENIED).
   */
  async check(request: CheckRequest = {}, options: CheckOptions = {}): Promise<Decision> {
    const message = this.#message(request, options);
    const cached = this.#denials?.get(message, Date.now());
    if (cached !== undefined) return cached;
    if (!this.#breaker.tryAcquire(Date.now())) {
      return this.#fallback(
        new RatelimitdUnavailableError("ratelimitd: not called, the client's circuit breaker is open", undefined, {
          breakerOpen: true,
        }),
        message,
      );
    }
    let response: CheckLimitResponse;
    try {
      response = await this.#call(message);
    } catch (caught) {
      const error = fromServiceError(caught as ServiceError);
      if (error instanceof RatelimitdUnavailableError) {
        this.#breaker.onFailure(Date.now());
        return this.#fallback(error, message);
      }
      this.#breaker.onSuccess();
      throw error;
    }
    this.#breaker.onSuccess();
    const decision = fromResponse(response);
    this.#denials?.remember(message, decision, Date.now());
    return decision;
  }

  /** Closes the channel, for a clean exit; the client is not to be used after. */
  close(): void {
    this.#rpc.close();
  }

  #message(request: CheckRequest, options: CheckOptions): CheckLimitRequest {
    return {
      domain: request.domain ?? this.domain,
      descriptors: [...(request.descriptors ?? [])],
      clientIp: normalizeIp(request.clientIp),
      peerIp: normalizeIp(request.peerIp),
      forwardedFor: request.forwardedFor ?? "",
      user: request.user ?? "",
      apiKey: request.apiKey ?? "",
      method: request.method ?? "",
      path: request.path ?? "",
      headers: { ...request.headers },
      cost: options.cost,
      limits: (options.limits ?? []).map(declaredLimit),
    };
  }

  #call(message: CheckLimitRequest): Promise<CheckLimitResponse> {
    return new Promise((resolve, reject) => {
      this.#rpc.checkLimit(message, this.#metadata.clone(), { deadline: Date.now() + this.#timeoutMs }, (error, response) => {
        if (error === null) resolve(response);
        else reject(error);
      });
    });
  }

  async #fallback(error: RatelimitdUnavailableError, message: CheckLimitRequest): Promise<Decision> {
    switch (this.#onError) {
      case "open":
        return openDecision(error);
      case "closed":
        return closedDecision(error);
      case "local":
        return this.#local.decide(message, error, Date.now());
      default:
        // Whatever it says, the service did not decide.
        return { ...(await this.#onError(error, message)), source: "fallback", degraded: true };
    }
  }
}
