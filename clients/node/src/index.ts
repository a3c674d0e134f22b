/**
 * @ratelimitd/client: ask ratelimitd whether a request may go through.
 * The framework integrations are `@ratelimitd/client/express` and
 * `@ratelimitd/client/fastify`; `@ratelimitd/client/fetch` runs in browsers.
 */
export { type BreakerOptions, type BreakerState } from "./breaker.js";
export {
  type CheckOptions,
  type CheckRequest,
  type OnError,
  RatelimitdClient,
  type RatelimitdClientOptions,
  type TlsFiles,
  tlsCredentials,
} from "./client.js";
export { closedDecision, type Decision, type DecisionCode, type DecisionSource, openDecision } from "./decision.js";
export { RatelimitdError, RatelimitdRequestError, RatelimitdUnavailableError } from "./errors.js";
export { type CheckLimitRequest, type LimitStatus, LimitStatus_Algorithm, LimitStatus_Failure } from "./gen/ratelimit/v1/ratelimit.js";
export { type IntegrationOptions, type KeyPart, type RouteLimit } from "./http.js";
export { normalizeIp } from "./ip.js";
export { type AlgorithmName, type Limit } from "./limits.js";
export { rateLimitAwareFetch, RetryBudget, type RetryOptions } from "./fetch.js";
