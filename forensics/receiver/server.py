"""Putting the receiver together and serving it until SIGTERM/SIGINT.

Start-up: policy, journal, authentication and TLS are checked first (a bad
setting is a one-line error before anything listens); then the receiver
resumes unfinished work from the journal and only then starts listening.
Shutdown (SIGTERM, SIGINT): stop listening, finish the requests in progress,
settle the queued alerts, let running captures finish for up to
``drain_timeout`` seconds (the rest resume at the next start), close the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from forensics.orchestration.request import Backend
from forensics.receiver.app import build_app
from forensics.receiver.auth import Authenticator, build_authenticator, server_ssl_context
from forensics.receiver.config import ServeConfig
from forensics.receiver.executor import DEFAULT_RUN_CAPTURE, RunCapture, make_executor
from forensics.receiver.gate import Gate, GatedSite, connection_limit
from forensics.receiver.journal import Journal
from forensics.receiver.logs import Tally, loop_exception_handler
from forensics.receiver.metrics import Metrics
from forensics.receiver.policy import Policy, load_policy
from forensics.receiver.service import Receiver

log = logging.getLogger("csi.receiver")


@dataclass
class Service:
    config: ServeConfig
    receiver: Receiver
    auth: Authenticator
    ssl_context: ssl.SSLContext | None
    app: web.Application


def pipeline_for(config: ServeConfig) -> RunCapture:
    """The real capture pipeline, configured from ``csi serve``'s settings."""
    from forensics.orchestration.pipeline import Settings, run_capture

    if config.home:
        os.environ["CSI_HOME"] = config.home  # the pipeline's stores follow the csi home
    settings = Settings(registry_backend=config.registry_backend, kubeconfig=config.kubeconfig,
                        context=config.context, checkpoint_dir=config.checkpoint_dir)
    return functools.partial(run_capture, settings=settings)


def argo_for(config: ServeConfig) -> RunCapture | None:
    """Captures as csi-capture Workflows on the configured Argo Server (None: not set)."""
    if not config.argo_server:
        return None
    from forensics.orchestration.argo import ArgoSettings, read_token, server_url
    from forensics.receiver.executor import argo_run_capture

    settings = ArgoSettings(server=server_url(config.argo_server),
                            namespace=config.argo_namespace,
                            token=read_token(config.argo_token_file),
                            verify=config.argo_ca_file or True)
    return argo_run_capture(settings)


def build_service(config: ServeConfig, policy: Policy | None = None, *,
                  run_capture: RunCapture | str | None = None,
                  clock: Callable[[], float] | None = None) -> Service:
    """Everything ``csi serve`` runs, validated.

    ``run_capture`` (tests and benchmarks only: a function, or ``MODULE:FUNCTION``
    imported at first use) replaces the pipeline; no serve setting can.
    """
    policy = policy if policy is not None else load_policy(config.policy)
    auth = build_authenticator(config.token_file, config.hmac_secret_file,
                               config.tls_client_ca, config.allow_unauthenticated)
    ssl_context = server_ssl_context(config.tls_cert, config.tls_key, config.tls_client_ca) \
        if config.tls_cert and config.tls_key else None
    journal = Journal(config.journal_path(), config.journal_sync)
    reports_root = config.home_path() / "reports"  # where the pipeline's report store writes
    extra = {"clock": clock} if clock is not None else {}
    receiver = Receiver(policy, journal, Metrics(), backend=cast(Backend, config.backend),
                        registry=config.registry, reports_root=reports_root,
                        retention=config.journal_retention, **extra)
    workers = config.workers or policy.guards.max_cluster
    if run_capture is None:
        run_capture = argo_for(config) if config.executor == "argo" else pipeline_for(config)
    try:
        receiver.executor = make_executor(
            config.executor, journal, run_capture=run_capture or DEFAULT_RUN_CAPTURE,
            workers=workers, max_per_node=policy.guards.max_per_node,
            on_finished=receiver.capture_finished)
    except BaseException:
        journal.close()
        raise
    return Service(config, receiver, auth, ssl_context,
                   build_app(receiver, auth, config.max_body, config.body_timeout))


@contextlib.asynccontextmanager
async def serving(service: Service) -> AsyncIterator[list[tuple[str, int]]]:
    """Resume, listen, yield the bound addresses; on exit drain and close."""
    receiver, config = service.receiver, service.config
    await receiver.start()
    loop = asyncio.get_running_loop()
    tally = Tally()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(loop_exception_handler(tally))
    limit, files = connection_limit(config.max_connections)
    handler_args: dict[str, Any] = {  # keep-alive: the gate closes idle connections first
        "access_log": log if config.access_log else None,
        "keepalive_timeout": config.header_timeout + 5}
    runner = web.AppRunner(service.app, handle_signals=False, **handler_args)
    await runner.setup()
    try:
        site = GatedSite(runner, config.host, config.port, ssl_context=service.ssl_context,
                         gate=Gate(limit, config.header_timeout, tally),
                         handler_args=handler_args, backlog=1024)
        await site.start()
        log.info("at most %d connections (RLIMIT_NOFILE %d); header timeout %gs, body "
                 "timeout %gs", limit, files, config.header_timeout, config.body_timeout)
        yield [(str(a[0]), int(a[1])) for a in runner.addresses]
    finally:
        await runner.cleanup()
        await receiver.stop(config.drain_timeout)
        receiver.journal.close()
        tally.flush(force=True)
        loop.set_exception_handler(previous_handler)


async def serve_forever(service: Service) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    config, receiver = service.config, service.receiver
    _tune_gc()
    async with serving(service) as addresses:
        scheme = "https" if service.ssl_context else "http"
        for host, port in addresses:
            shown = f"[{host}]" if ":" in host else host
            log.info("listening on %s://%s:%d", scheme, shown, port)
        log.info("executor %s, backend %s, policy %s, journal %s (synchronous=%s), auth %s",
                 config.executor, config.backend, receiver.policy.path,
                 receiver.journal.path, config.journal_sync.upper(), _auth_text(service))
        problem = await asyncio.to_thread(receiver.readiness)
        if problem:
            log.warning("not ready: %s", problem)
        await stop.wait()
        log.info("shutting down: draining (up to %.0fs)", config.drain_timeout)
    log.info("stopped")


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the accept path's latency.

    The start-up objects (modules, policy, app) are frozen out of collections,
    and the first generation is larger: the accept path frees almost all it
    allocates by reference counting, so collections find little but cost
    pauses that show in the p99 latency.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _auth_text(service: Service) -> str:
    auth = service.auth
    methods = [m for m, on in (("bearer token", auth.token), ("HMAC signature", auth.hmac_secret),
                               ("mTLS", auth.mtls)) if on]
    return " or ".join(methods) if methods else "NONE (allow_unauthenticated)"
