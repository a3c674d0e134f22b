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
 * the field; FAILED_PRECONDITION: the domain does not accept declared limits;
 * or any other answer that is not an outage). A bug in the caller or the
 * policy: `check()` throws it, the on-error policy never hides it.
 */
export class RatelimitdRequestError extends RatelimitdError {}

/**
 * The service could not decide: unreachable, too slow for the deadline, or
 * skipped because the client's circuit breaker is open. The on-error policy
 * decides instead; the resulting decision carries this error.
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
 * Only these mean "the service failed": connection errors reach grpc-js as
 * UNAVAILABLE, a missed deadline as DEADLINE_EXCEEDED. Every other status is
 * an answer about the request, surfaced as a typed error.
 */
const OUTAGE_CODES: ReadonlySet<status> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

/** Classifies a failed gRPC call. */
export function fromServiceError(error: ServiceError): RatelimitdError {
  const message = `ratelimitd: ${status[error.code]}: ${error.details}`;
  return OUTAGE_CODES.has(error.code)
    ? new RatelimitdUnavailableError(message, error.code, { cause: error })
    : new RatelimitdRequestError(message, error.code, { cause: error });
}
