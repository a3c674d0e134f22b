import { status, type ServiceError } from "@grpc/grpc-js";

/** Every error this package raises or hands to an `onError` callback. */
export class RatelimitdError extends Error {
  /** The gRPC status code of the failed call, when there was a call. */
  readonly grpcCode: status | undefined;

  constructor(message: string, grpcCode?: status, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.grpcCode = grpcCode;
  }
}

/**
 * The service refused the request itself (INVALID_ARGUMENT: the message names
 * the field; FAILED_PRECONDITION: the domain does not accept declared
 * limits; UNAUTHENTICATED: the token or certificate matches no identity;
 * PERMISSION_DENIED: the identity may not check the domain or declare
 * limits). A bug in the caller or the policy: `check()` throws it, the
 * on-error policy never hides it.
 */
export class RatelimitdRequestError extends RatelimitdError {}

/**
 * The service could not decide: unreachable (UNAVAILABLE, also how
 * connection errors arrive), too slow for the deadline (DEADLINE_EXCEEDED),
 * any other failed call, or skipped because the client's circuit breaker is
 * open. The on-error policy decides instead; the decision carries this
 * error.
 */
export class RatelimitdUnavailableError extends RatelimitdError {
  /** True when no call was made because the circuit breaker is open. */
  readonly breakerOpen: boolean;

  constructor(message: string, grpcCode?: status, options?: ErrorOptions & { breakerOpen?: boolean }) {
    super(message, grpcCode, options);
    this.breakerOpen = options?.breakerOpen ?? false;
  }
}

/**
 * Only these are answers about the request; every other status means the
 * service failed to decide (the same split in every ratelimitd client).
 */
const REQUEST_CODES: ReadonlySet<status> = new Set([
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
]);

/** Classifies a failed gRPC call. */
export function fromServiceError(error: ServiceError): RatelimitdError {
  const message = `ratelimitd: ${status[error.code]}: ${error.details}`;
  return REQUEST_CODES.has(error.code)
    ? new RatelimitdRequestError(message, error.code, { cause: error })
    : new RatelimitdUnavailableError(message, error.code, { cause: error });
}
