"""Typed exceptions: a bad request is the caller's bug, a failing service is not.

The split decides what ``on_error`` sees: :class:`ServiceError` (the service
is down, slow or answered with an unexpected status) goes to the failure
policy and counts for the circuit breaker; :class:`RequestError` is raised
to the caller, because allowing or refusing by policy would hide a mistake
in the code or the configuration that no retry fixes.
"""

from __future__ import annotations

import grpc


class RatelimitdError(Exception):
    """Base of every error this package raises."""


class RequestError(RatelimitdError):
    """The service refused the request itself (nothing was counted).

    ``field`` is the part of the request the service named (``limits[1].rate``,
    ``domain``), when it named one.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        head, colon, _ = message.partition(":")
        self.field: str | None = head if colon and " " not in head else None


class InvalidArgumentError(RequestError):
    """INVALID_ARGUMENT: a malformed request, or a declared limit beyond the policy's caps."""


class FailedPreconditionError(RequestError):
    """FAILED_PRECONDITION: limits declared in a domain that does not accept them."""


class AuthError(RequestError):
    """UNAUTHENTICATED or PERMISSION_DENIED: the service does not know the caller, or refuses it.

    The token or certificate matches no identity, or the identity may not check
    this domain, declare limits or call the Admin service.
    """


class ServiceError(RatelimitdError):
    """The service could not decide: unreachable, past the deadline, or another status.

    ``code`` is the gRPC status (``None`` when no call was made).
    """

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class CircuitOpenError(ServiceError):
    """No call was made: the client's circuit breaker is open after repeated failures."""


def classify(error: grpc.RpcError) -> RatelimitdError:
    """The typed error for a failed call: a :class:`RequestError` or a :class:`ServiceError`."""
    # Sync errors are grpc.Call, aio ones (AioRpcError) only look like one.
    code_of = getattr(error, "code", None)
    details_of = getattr(error, "details", None)
    code: grpc.StatusCode | None = code_of() if callable(code_of) else None
    details = (details_of() if callable(details_of) else None) or str(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgumentError(code, details)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPreconditionError(code, details)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return AuthError(code, details)
    name = code.name if code is not None else "UNKNOWN"
    return ServiceError(f"ratelimitd failed: {name}: {details}", code)
