"""Serve an aiohttp app on 127.0.0.1 from a background thread with its own event loop.

The port is chosen once and kept across :meth:`BackgroundServer.stop` and
:meth:`BackgroundServer.start`, so a test can take a server down (clients see
"connection refused") and bring it back at the same address.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class BackgroundServer:
    """One aiohttp application served by one thread."""

    def __init__(self, app: web.Application, *, ssl_context: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1") -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.host = host
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                         name="csi-double")
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._site is not None

    def call(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(factory(), self.loop).result(timeout)

    def start(self) -> BackgroundServer:
        """Listen (again, on the same port after a :meth:`stop`)."""
        if self._site is None:
            self.call(self._start)
        return self

    def stop(self) -> None:
        """Stop listening: clients now see "connection refused"."""
        if self._site is not None:
            site, self._site = self._site, None
            self.call(site.stop)
            self.call(self._drop_connections)  # down means down, keep-alive or not

    def close(self) -> None:
        self.stop()
        if self._runner is not None:
            self.call(self._runner.cleanup)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        if self._runner is None:
            self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
            await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context,
                           reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        self._site = site

    async def _drop_connections(self) -> None:
        server = self._runner.server if self._runner else None
        for handler in list(server.connections if server else ()):
            handler.force_close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
