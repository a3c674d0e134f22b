import type { IncomingMessage } from "node:http";
import type { CheckOptions, CheckRequest, RatelimitdClient } from "./client.js";
import type { Decision } from "./decision.js";
import type { Limit } from "./limits.js";

/**
 * One part of a limit's key: a part of the policy's key language (`ip`,
 * `user`, `user|ip`, `header:x-tenant` ...), or a function of the request
 * whose value is counted (undefined: the limit does not apply to it).
 */
export type KeyPart<Req> = string | ((req: Req) => string | undefined);

/** A limit a route declares; `rate` and key parts may depend on the request. */
export interface RouteLimit<Req> extends Omit<Limit, "rate" | "key"> {
  readonly rate: string | ((req: Req) => string);
  readonly key?: KeyPart<Req> | readonly KeyPart<Req>[];
}

/** What the Express middleware and the Fastify plugin share. */
export interface IntegrationOptions<Req> {
  readonly client: RatelimitdClient;
  /** Declared with every request. */
  readonly limits?: readonly RouteLimit<Req>[];
  /**
   * More of the request for the policy: `user`, `apiKey`, `descriptors`,
   * `headers` ... (method, path, the socket's address and
   * `X-Forwarded-For` are sent already).
   */
  readonly request?: (req: Req) => CheckRequest;
  /** Requests for which nothing is checked. */
  readonly skip?: (req: Req) => boolean;
  /** Hits each request consumes. Default 1. */
  readonly cost?: number | ((req: Req) => number);
}

/**
 * The one `CheckLimit` of an HTTP request: its method, path (no query),
 * the socket's address as `peerIp` (IPv4-mapped normalised by the client)
 * and the raw `X-Forwarded-For` as `forwardedFor` (the service resolves it
 * through its trusted proxies; the left-most hop is the client's to forge),
 * then what `options.request` adds, with `limits` evaluated for `req`.
 */
export function checkHttpRequest<Req>(
  req: Req,
  raw: IncomingMessage,
  limits: readonly RouteLimit<Req>[],
  options: IntegrationOptions<Req>,
): Promise<Decision> {
  const forwarded = raw.headers["x-forwarded-for"];
  // Express rewrites `url` below a mount point; `originalUrl` is the request's.
  const url = "originalUrl" in raw && typeof raw.originalUrl === "string" ? raw.originalUrl : (raw.url ?? "");
  const extra = options.request?.(req) ?? {};
  const descriptors = [...(extra.descriptors ?? [])];
  const declared = limits.flatMap((limit): Limit[] => {
    const parts = limit.key === undefined ? [] : typeof limit.key === "object" ? limit.key : [limit.key];
    const key: string[] = [];
    for (const [index, part] of parts.entries()) {
      if (typeof part === "string") {
        key.push(part);
        continue;
      }
      const value = part(req);
      if (value === undefined) return [];
      // A computed value travels as a descriptor the key then names.
      const descriptor = `ratelimitd.key.${limit.name}.${index}`;
      descriptors.push({ key: descriptor, value });
      key.push(`descriptor:${descriptor}`);
    }
    return [{ ...limit, key, rate: typeof limit.rate === "string" ? limit.rate : limit.rate(req) }];
  });
  const check: CheckOptions = {
    cost: typeof options.cost === "function" ? options.cost(req) : options.cost,
    limits: declared,
  };
  return options.client.check(
    {
      method: raw.method,
      path: url.split("?", 1)[0],
      peerIp: raw.socket.remoteAddress,
      forwardedFor: Array.isArray(forwarded) ? forwarded.join(", ") : forwarded,
      ...extra,
      descriptors,
    },
    check,
  );
}

/**
 * The status of a denial: 503 when the service (or the closed on-error
 * policy) could not decide, 429 over a limit.
 */
export function denialStatus(decision: Decision): 429 | 503 {
  return decision.code === "UNAVAILABLE" ? 503 : 429;
}

/**
 * The headers of a denial: the decision's, plus `Retry-After` (whole
 * seconds, rounded up) when it has none and a wait is known (a local
 * fallback decision has no service headers).
 */
export function denialHeaders(decision: Decision): Record<string, string> {
  const headers = { ...decision.headers };
  const hasRetryAfter = Object.keys(headers).some((name) => name.toLowerCase() === "retry-after");
  if (!hasRetryAfter && decision.retryAfterMs > 0) headers["Retry-After"] = String(Math.ceil(decision.retryAfterMs / 1000));
  return headers;
}

/** The default body of a denial. */
export function denialBody(decision: Decision): string {
  return decision.code === "UNAVAILABLE" ? "Service Unavailable\n" : "Too Many Requests\n";
}
