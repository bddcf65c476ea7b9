"""The listener: a bounded number of connections, each with a deadline for its headers.

An unauthenticated client must not be able to take the receiver down. So:

* **Connection limit.** At most ``limit`` connections are open at once, below
  the process's file limit (``RLIMIT_NOFILE``) with room kept for the journal,
  the registry, podman and the threads' files (:func:`connection_limit`).
  The listener accepts one connection at a time and only while under the
  limit, so ``accept()`` never runs out of descriptors. At the limit it first
  closes the connection that has been idle longest (no request in progress:
  a slow or silent client, a keep-alive connection); if every connection is
  busy it stops accepting until one closes (new clients wait in the kernel's
  backlog). A flood of idle connections thus never locks out ``/healthz``;
  nor do slow bodies that are not authenticated yet (HMAC signs the body, so
  it is read first): those are closed next.
* **Header timeout.** A connection must deliver a request's headers within
  ``header_timeout`` seconds of opening (or of its previous response, on
  keep-alive), else it is closed; the TLS handshake has the same deadline.
  The body has ``body_timeout`` (see :mod:`.app`).
* **Client errors are one line of JSON**: a malformed request line or header
  gets ``{"error": "bad request: …"}`` with its status, and is counted, never
  logged with a traceback (:class:`GuardedHandler`).

Everything the gate does to clients is counted in a :class:`~.logs.Tally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
import sys
from collections import OrderedDict
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from forensics.receiver.logs import RESOURCE_ERRNOS, Tally, visible

log = logging.getLogger("csi.receiver")
MAX_LIMIT = 1024  # connections, whatever the file limit (each may buffer ~1 MiB of headers)
MIN_LIMIT = 8
SWEEP_EVERY = 0.5  # seconds between header-deadline sweeps


def connection_limit(configured: int | None = None) -> tuple[int, int]:
    """(connection limit, RLIMIT_NOFILE soft limit): the configured number, or by default
    the file limit less a reserve of a quarter (at least 64) for everything else."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    room = soft - max(64, soft // 4)
    limit = min(MAX_LIMIT, room) if configured is None else min(configured, room)
    return max(MIN_LIMIT, limit), soft


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler, known to the :class:`Gate` and answering errors in JSON."""

    def __init__(self, gate: Gate, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.joined = False  # connection_made was called: connection_lost releases the slot
        self.opened = False
        self.served = False  # has handled a request: an idle close is keep-alive's end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.joined = self.opened = True
        super().connection_made(transport)
        self.gate.idle(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.opened:
            self.opened = False
            self.gate.closed(self)
        super().connection_lost(exc)

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp's own logging of an exception: a client's doing is counted, not traced."""
        exc = kwargs.get("exc_info")
        if exc is True:
            exc = sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError | ConnectionError):
            self.gate.tally.note("broken requests", visible(f"{type(exc).__name__}: "
                                                            f"{' '.join(str(exc).split())}"))
            return
        super().log_exception(*args, **kwargs)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp could not parse (or a handler error it caught): one JSON line."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response was sent already: cannot send the error")
        text = " ".join((message or (str(exc) if exc else "") or "").split())[:200]
        if status < 500:
            self.gate.tally.note("malformed requests", f"{status} {visible(text)}")
            body = {"error": f"bad request: {text}" if text else "bad request"}
        else:
            log.error("error handling a request: %s", f"{type(exc).__name__}: {exc}"
                      if exc else text or "unknown")
            body = {"error": "internal error" if status == 500 else
                    text or HTTPStatus(status).phrase.lower()}
        response = web.json_response(body, status=status)
        response.force_close()
        return response


class Gate:
    """The open connections: which are idle since when, closing the stale, at most ``limit``."""

    def __init__(self, limit: int, header_timeout: float, tally: Tally) -> None:
        self.limit, self.header_timeout, self.tally = limit, header_timeout, tally
        self.open = 0  # accepted sockets not yet closed, TLS handshakes included
        self._idle: OrderedDict[GuardedHandler, float] = OrderedDict()  # oldest first
        # reading a body before they are authenticated (HMAC): evicted after the idle ones
        self._unauthenticated: OrderedDict[GuardedHandler, None] = OrderedDict()
        self._changed = asyncio.Event()  # a connection closed or became evictable

    def acquire(self) -> None:
        self.open += 1

    def release(self) -> None:
        self.open -= 1
        self._changed.set()

    def idle(self, handler: GuardedHandler) -> None:
        """``handler`` waits for a request's headers from now on."""
        self._idle.pop(handler, None)
        self._idle[handler] = asyncio.get_running_loop().time()
        self._changed.set()  # an accept waiting at the limit may evict it

    def busy(self, handler: GuardedHandler) -> None:
        """``handler`` is handling a request: neither stale nor to be evicted."""
        self._idle.pop(handler, None)
        self._unauthenticated.pop(handler, None)
        handler.served = True

    def reading_unauthenticated(self, handler: GuardedHandler) -> None:
        """``handler`` reads a body its client has not authenticated yet (HMAC): a slow
        body must not let an anonymous client hold connections the limit needs."""
        self._unauthenticated[handler] = None
        self._changed.set()

    def closed(self, handler: GuardedHandler) -> None:
        self._idle.pop(handler, None)
        self._unauthenticated.pop(handler, None)
        self.release()

    async def room(self) -> None:
        """Return once a connection may be accepted: evict the longest idle one if need be."""
        while self.open >= self.limit:
            self._changed.clear()
            if not self.evict(f"at the limit of {self.limit}"):
                # all busy, or accepted and not yet started: wait for one to close or idle
                self.tally.note(f"waits at the limit of {self.limit} busy connections")
            await self._changed.wait()

    def evict(self, why: str) -> bool:
        """Close the connection idle longest, else the oldest unauthenticated body read."""
        if self._idle:
            handler, _ = self._idle.popitem(last=False)
            self.tally.note(f"idle connections closed {why}")
        elif self._unauthenticated:
            handler, _ = self._unauthenticated.popitem(last=False)
            self.tally.note(f"unauthenticated body reads closed {why}")
        else:
            return False
        _drop(handler)
        return True

    def sweep(self) -> None:
        """Close the connections that sent no complete headers within the header timeout."""
        deadline = asyncio.get_running_loop().time() - self.header_timeout
        while self._idle:
            handler, since = next(iter(self._idle.items()))
            if since > deadline:
                break
            del self._idle[handler]
            if not handler.served:  # else an idle keep-alive connection: nothing to report
                self.tally.note(f"connections closed after the {self.header_timeout:g}s "
                                "header timeout")
            _drop(handler)


def _drop(handler: GuardedHandler) -> None:
    """Close an idle connection now: nothing it is owed, nothing left to flush."""
    transport = handler.transport
    handler.force_close()
    if transport is not None:
        transport.abort()  # a client that does not read cannot keep the descriptor


class GatedSite(web.BaseSite):
    """A TCP site whose accept loop honours a :class:`Gate` (see the module doc)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, gate: Gate,
                 handler_args: dict[str, Any], ssl_context: ssl.SSLContext | None = None,
                 backlog: int = 1024) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self.gate, self._handler_args = host, port, gate, handler_args
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[socket.socket] = []

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def sockets(self) -> list[socket.socket]:
        return self._listeners

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._listeners = _listen(self._host, self._port, self._backlog)
        self._server = self  # type: ignore[assignment]  # runner.addresses reads .sockets
        for listener in self._listeners:
            self._spawn(self._accept_loop(loop, listener))
        self._spawn(self._sweep_loop())

    def close(self) -> None:
        """Stop accepting (the runner closes the open connections)."""
        for task in list(self._tasks):
            task.cancel()
        for listener in self._listeners:
            listener.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.gate.sweep()
            self.gate.tally.flush()

    async def _accept_loop(self, loop: asyncio.AbstractEventLoop,
                           listener: socket.socket) -> None:
        while True:
            await self.gate.room()
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:  # descriptors used elsewhere: make room
                    self.gate.tally.note("accept failures", f"{exc.strerror}")
                    self.gate.evict("when accept() failed")
                    await asyncio.sleep(0.1)
                continue
            self.gate.acquire()
            sock.setblocking(False)
            self._spawn(self._connect(loop, sock))

    async def _connect(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        server = self._runner.server
        handler_made: list[GuardedHandler] = []

        def factory() -> GuardedHandler:
            handler = GuardedHandler(self.gate, server, loop=loop, **self._handler_args)
            handler_made.append(handler)
            return handler

        try:
            await loop.connect_accepted_socket(
                factory, sock, ssl=self._ssl_context,
                ssl_handshake_timeout=self.gate.header_timeout if self._ssl_context else None)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self.gate.tally.note("failed TLS handshakes" if self._ssl_context
                                 else "failed connections", f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError):
                sock.close()
            if not (handler_made and handler_made[0].joined):
                self.gate.release()  # else its connection_lost did or will
        except asyncio.CancelledError:
            if not (handler_made and handler_made[0].joined):
                sock.close()
                self.gate.release()
            raise


def _listen(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host``:``port`` (as asyncio binds)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
            if port == 0:  # one ephemeral port for every address of the host
                port = sock.getsockname()[1]
                break
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners
