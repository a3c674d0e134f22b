"""``Client`` (grpcio) and ``AsyncClient`` (``grpc.aio``): one check, one CheckLimit.

Fork- and loop-safe by construction: no channel exists until the first
call, a process that forked (gunicorn ``--preload``, Celery prefork) builds
its own and never touches the parent's, and an ``AsyncClient`` keeps one
channel per running event loop (an aio channel is bound to the loop it
first ran on).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from ratelimitd._core import CheckAttributes, Core, OnError, Options
from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2 as pb
from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2_grpc as pb_grpc
from ratelimitd.breaker import DEFAULT_BREAKER, BreakerOptions, BreakerState
from ratelimitd.decision import Decision
from ratelimitd.errors import classify

if TYPE_CHECKING:  # Unpack is in typing from 3.11; annotations are never evaluated
    from typing_extensions import Unpack

# Channels inherited across a fork: kept referenced so that the child never
# closes them (closing would act on the parent's connections and threads).
_inherited: list[object] = []
_clients: weakref.WeakSet[_BaseClient] = weakref.WeakSet()
_LOCAL_POOL = "grpc.use_local_subchannel_pool"


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._forget_inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)


def tls_credentials(
    ca_file: str | os.PathLike[str] | None = None,
    cert_file: str | os.PathLike[str] | None = None,
    key_file: str | os.PathLike[str] | None = None,
) -> grpc.ChannelCredentials:
    """TLS credentials from PEM files, for ``credentials``.

    ``ca_file``: the CA to trust (``None``: the system's roots); ``cert_file``
    and ``key_file``: a client certificate and key for mutual TLS (both or
    neither).
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together")

    def read(path: str | os.PathLike[str] | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file),
        private_key=read(key_file),
        certificate_chain=read(cert_file),
    )


class _BaseClient:
    """Options, the shared decision logic, and per-process state."""

    def __init__(
        self,
        target: str,
        domain: str,
        *,
        timeout: float = 0.05,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
        on_error: OnError = "open",
        local_replicas: int = 1,
        trusted_proxies: Iterable[str] = (),
        breaker: BreakerOptions | None = DEFAULT_BREAKER,
        deny_cache: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Nothing connects here; see the class docstring for each option."""
        self._init_core(
            Core(
                Options(
                    target=target,
                    domain=domain,
                    timeout=timeout,
                    credentials=credentials,
                    channel_options=tuple(channel_options),
                    metadata=tuple(metadata),
                    token=token,
                    on_error=on_error,
                    local_replicas=local_replicas,
                    trusted_proxies=tuple(trusted_proxies),
                    breaker=breaker,
                    deny_cache=deny_cache,
                    clock=clock,
                )
            )
        )

    def _init_core(self, core: Core) -> None:
        self._core = core
        self._pid = os.getpid()
        self._lock = threading.Lock()
        _clients.add(self)

    @property
    def options(self) -> Options:
        """The options the client was built with."""
        return self._core.options

    @property
    def breaker_state(self) -> BreakerState:
        """The client's circuit breaker: CLOSED, OPEN or HALF_OPEN."""
        return self._core.breaker_state

    def request(self, **attributes: Unpack[CheckAttributes]) -> pb.CheckLimitRequest:
        """The CheckLimitRequest :meth:`check` would send (same keyword arguments)."""
        return self._core.request(**attributes)

    def _forget_inherited(self) -> None:
        """In a forked child: drop (never close) the parent's channels, renew locks."""
        self._lock = threading.Lock()
        self._core.reset_after_fork()
        self._drop_channels()
        self._pid = os.getpid()

    def _drop_channels(self) -> None:
        raise NotImplementedError

    def _ensure_own_process(self) -> None:
        # The fork hook does this already; a pid check also covers children
        # made without os.fork's hooks running (os.posix_spawn-like paths).
        if self._pid != os.getpid():
            self._forget_inherited()

    def _new_channel(self, module: Any) -> Any:
        options = self.options
        arguments = list(options.channel_options)
        # Each channel its own connections: by default gRPC shares them
        # process-wide, and a forked child's new channel would pick up the
        # parent's (UNAVAILABLE: "Wrong file descriptor generation").
        if not any(name == _LOCAL_POOL for name, _ in arguments):
            arguments.append((_LOCAL_POOL, 1))
        if options.credentials is not None:
            return module.secure_channel(options.target, options.credentials, arguments)
        return module.insecure_channel(options.target, arguments)


class Client(_BaseClient):
    """A blocking client on grpcio.

    ``Client(target, domain, *, timeout=0.05, credentials=None,
    channel_options=(), metadata=(), token=None, on_error='open', local_replicas=1,
    trusted_proxies=(), breaker=BreakerOptions(), deny_cache=False,
    clock=time.monotonic)``:

    - ``target``: ``host:port`` (any gRPC target, e.g. ``dns:///svc:8081``);
      ``domain``: the policy domain of every check unless one names another.
    - ``timeout``: the deadline of each call, in seconds.
    - ``credentials``: ``grpc.ssl_channel_credentials(...)`` for TLS (mutual
      TLS with a certificate chain and key); ``None`` is plaintext.
      :func:`tls_credentials` reads them from PEM files.
      ``channel_options``: grpc channel arguments; ``metadata``: sent with
      every call; ``token``: a bearer token sent as ``authorization: Bearer
      …`` (the service's ``auth:`` identities).
    - ``on_error``: what decides when the service cannot (unreachable,
      deadline exceeded, any status but INVALID_ARGUMENT,
      FAILED_PRECONDITION, UNAUTHENTICATED and PERMISSION_DENIED, which
      raise): ``'open'`` allows, ``'closed'``
      refuses with ``code='UNAVAILABLE'``, ``'local'`` counts the declared
      limits in process (see :mod:`ratelimitd.local`), or a callable
      ``(error, request) -> Decision``. ``local_replicas`` divides the local
      limits; ``trusted_proxies`` resolves the client's address for them.
    - ``breaker``: :class:`BreakerOptions` (``None``: no breaker).
    - ``deny_cache``: answer a denied request again from memory until its
      ``retry_after`` (off by default: a policy rule may count denied hits,
      which the client cannot know; never for ``count_denied`` limits).
    - ``clock``: monotonic seconds, for the breaker, the cache and the local
      fallback.
    """

    _channel: grpc.Channel | None = None
    _limiter: pb_grpc.RateLimiterStub | None = None
    _admin: pb_grpc.AdminStub | None = None

    def check(self, **attributes: Unpack[CheckAttributes]) -> Decision:
        """Decides one request: consumes ``cost`` (default 1; 0 only checks) from every limit.

        Keyword arguments: ``limits`` (declared :class:`Limit` objects),
        ``cost``, ``descriptors`` (a mapping or pairs), ``peer_ip`` (the
        address the socket saw) and ``forwarded_for`` (the raw
        ``X-Forwarded-For``; the service resolves the client through its
        trusted proxies), ``client_ip`` (an address already resolved),
        ``user``, ``api_key``, ``method``, ``path``, ``headers``, ``domain``.
        """
        return self.decide(self._core.request(**attributes))

    def decide(self, request: pb.CheckLimitRequest) -> Decision:
        """:meth:`check` for a request already built (by :meth:`request`)."""
        early = self._core.gate(request)
        if early is not None:
            return early
        limiter, _ = self._stubs()
        try:
            response = limiter.CheckLimit(
                request, timeout=self.options.timeout, metadata=self.options.call_metadata
            )
        except grpc.RpcError as error:
            return self._core.failed(request, error)
        return self._core.answered(request, response)

    def inspect(self, request: pb.CheckLimitRequest, rule: str = "") -> Decision:
        """What a check of ``request`` would see, consuming nothing (``Admin/Inspect``).

        Admin calls have no failure policy: every error raises, typed.
        """
        _, admin = self._stubs()
        try:
            response = admin.Inspect(
                pb.InspectRequest(request=request, rule=rule),
                timeout=self.options.timeout,
                metadata=self.options.call_metadata,
            )
        except grpc.RpcError as error:
            raise classify(error) from error
        return Decision.from_proto(response)

    def backends(self, timeout: float | None = None) -> pb.BackendsResponse:
        """Every backend's breaker state, and whether the service is serving (``Admin/Backends``)."""
        _, admin = self._stubs()
        try:
            response: pb.BackendsResponse = admin.Backends(
                pb.BackendsRequest(),
                timeout=timeout or self.options.timeout,
                metadata=self.options.call_metadata,
            )
        except grpc.RpcError as error:
            raise classify(error) from error
        return response

    def close(self) -> None:
        """Closes this process's channel (a later call opens a new one)."""
        with self._lock:
            channel, self._channel = self._channel, None
            self._limiter = self._admin = None
        if channel is not None:
            channel.close()

    def _stubs(self) -> tuple[pb_grpc.RateLimiterStub, pb_grpc.AdminStub]:
        self._ensure_own_process()
        with self._lock:
            if self._limiter is None or self._admin is None:
                self._channel = self._new_channel(grpc)
                self._limiter = pb_grpc.RateLimiterStub(self._channel)  # type: ignore[no-untyped-call]
                self._admin = pb_grpc.AdminStub(self._channel)  # type: ignore[no-untyped-call]
            return self._limiter, self._admin

    def _drop_channels(self) -> None:
        if self._channel is not None:
            _inherited.append(self._channel)
        self._channel = self._limiter = self._admin = None


class AsyncClient(_BaseClient):
    """The asyncio client on ``grpc.aio``: the options and behaviour of :class:`Client`.

    One channel per running event loop and process. Under WSGI, Django runs
    each async view in a one-off loop; there, use the sync :class:`Client`
    from a thread instead (``ratelimitd.django`` does), not a channel per
    request.
    """

    def __init__(self, target: str, domain: str, **options: Any) -> None:
        """The same options as :class:`Client`."""
        super().__init__(target, domain, **options)
        self._channels: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop,
            tuple[grpc.aio.Channel, pb_grpc.RateLimiterStub, pb_grpc.AdminStub],
        ] = weakref.WeakKeyDictionary()

    @classmethod
    def sharing(cls, client: Client) -> AsyncClient:
        """An AsyncClient with ``client``'s options, breaker, denial cache and local counters."""
        shared = cls.__new__(cls)
        shared._channels = weakref.WeakKeyDictionary()
        shared._init_core(client._core)
        return shared

    async def check(self, **attributes: Unpack[CheckAttributes]) -> Decision:
        """See :meth:`Client.check`."""
        return await self.decide(self._core.request(**attributes))

    async def decide(self, request: pb.CheckLimitRequest) -> Decision:
        """See :meth:`Client.decide`."""
        early = self._core.gate(request)
        if early is not None:
            return early
        _, limiter, _ = self._loop_channel()
        try:
            response = await limiter.CheckLimit(
                request, timeout=self.options.timeout, metadata=self.options.call_metadata
            )
        except grpc.RpcError as error:
            return self._core.failed(request, error)
        return self._core.answered(request, response)

    async def inspect(self, request: pb.CheckLimitRequest, rule: str = "") -> Decision:
        """See :meth:`Client.inspect`."""
        _, _, admin = self._loop_channel()
        try:
            response = await admin.Inspect(
                pb.InspectRequest(request=request, rule=rule),
                timeout=self.options.timeout,
                metadata=self.options.call_metadata,
            )
        except grpc.RpcError as error:
            raise classify(error) from error
        return Decision.from_proto(response)

    async def close(self) -> None:
        """Closes the running loop's channel (call it before the loop ends, e.g. in a lifespan)."""
        loop = asyncio.get_running_loop()
        entry = self._channels.pop(loop, None)
        if entry is not None:
            await entry[0].close()

    def _loop_channel(
        self,
    ) -> tuple[grpc.aio.Channel, pb_grpc.RateLimiterStub, pb_grpc.AdminStub]:
        self._ensure_own_process()
        loop = asyncio.get_running_loop()
        entry = self._channels.get(loop)
        if entry is None:
            channel = self._new_channel(grpc.aio)
            entry = (
                channel,
                pb_grpc.RateLimiterStub(channel),  # type: ignore[no-untyped-call]
                pb_grpc.AdminStub(channel),  # type: ignore[no-untyped-call]
            )
            self._channels[loop] = entry
        return entry

    def _drop_channels(self) -> None:
        _inherited.extend(entry[0] for entry in self._channels.values())
        self._channels = weakref.WeakKeyDictionary()
