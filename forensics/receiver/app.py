"""The aiohttp application: thin handlers over :class:`~forensics.receiver.service.Receiver`.

======================================  ===================================================
``POST /``, ``POST /falco``             one Falco alert → 202 ``{"id", "decision", …}``;
                                        401 unauthenticated, 413 too large, 415 not JSON
                                        (Falco without ``json_output``), 400 invalid
``GET /healthz``                        liveness: 200 while the process serves
``GET /readyz``                         200 when the journal is writable and the executor
                                        can run captures, else 503 with the reason
``GET /metrics``                        Prometheus text format
``GET /api/v1/captures[/{id}]``         capture status, links to the report and the image
``GET /api/v1/alerts/{id}``             an alert, its decision and its outcome
======================================  ===================================================

Every refusal is JSON ``{"error": "<one line>"}`` with the right status (405 for
a wrong method, 404 for an unknown path, 408 for a body slower than
``body_timeout``; requests aiohttp cannot parse get the same from
:class:`~.gate.GuardedHandler`): never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import HttpVersion11, web

from forensics.receiver.auth import SIGNATURE_HEADER, Authenticator
from forensics.receiver.metrics import CONTENT_TYPE
from forensics.receiver.service import Answer, Receiver

RECEIVER = web.AppKey("receiver", Receiver)
AUTH = web.AppKey("auth", Authenticator)
MAX_BODY = web.AppKey("max_body", int)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
JSON_TYPES = ("application/json", "application/falco+json")
TEXT_HINT = ("Content-Type text/plain: Falco sent its text output; set json_output: true "
             "in falco.yaml (and keep http_output.enabled: true) so alerts arrive as JSON")
log = logging.getLogger("csi.receiver")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answer(answer: Answer) -> web.Response:
    return web.json_response(answer.body, status=answer.status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP errors as one-line JSON; a bug in a handler is a 500 with one line, logged.

    It also tells the connection gate (:mod:`.gate`) that the connection is busy
    with a request, then idle again: only idle connections are closed for the
    header timeout or to make room at the connection limit.
    """
    protocol = request.protocol
    gate = getattr(protocol, "gate", None)
    if gate is not None:
        gate.busy(protocol)
    try:
        return await _errors(request, handler)
    finally:
        if gate is not None and getattr(protocol, "opened", False):
            gate.idle(protocol)


async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") \
            else exc.reason
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            message = f"method {request.method} not allowed on {request.path}" + \
                (f" (use {allowed})" if allowed else "")
        return web.json_response({"error": message}, status=exc.status,
                                 headers={k: v for k, v in exc.headers.items()
                                          if k == "Allow"})
    except Exception as exc:
        log.exception("internal error on %s %s", request.method, request.path)
        return web.json_response({"error": f"internal error: {type(exc).__name__}"},
                                 status=500)


def _media_type_problem(request: web.Request) -> str | None:
    header = request.headers.get("Content-Type")
    if header is None:
        return None  # curl -d without -H, some relays: try it as JSON
    media = request.content_type.lower()
    if media in JSON_TYPES or media.endswith("+json"):
        return None
    if media == "text/plain":
        return TEXT_HINT
    return f"Content-Type {media} is not supported: send the alert as application/json"


async def accept(request: web.Request) -> web.Response:
    """One alert: authenticate, check, then validate → journal → 202, fast."""
    receiver, auth = request.app[RECEIVER], request.app[AUTH]
    started = time.perf_counter()
    receiver.metrics.received.inc()
    remote = request.remote or "?"
    signature = request.headers.get(SIGNATURE_HEADER)
    body = b""
    if auth.needs_body and signature:  # not authenticated yet: a refusal is not journaled
        read = await _read(request, authenticated=False)
        if isinstance(read, Answer):
            return _refused(receiver, read)
        body = read
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    problem = auth.check(request.headers.get("Authorization"), signature, body, bool(peer))
    if problem:
        _warn_unauthenticated(request, remote, problem)
        return _refused(receiver, receiver.refuse(401, "unauthenticated", problem, remote))
    media = _media_type_problem(request)
    if media:
        return _refused(receiver, receiver.refuse(415, "unsupported_media_type", media, remote))
    if not body:
        read = await _read(request)
        if isinstance(read, Answer):
            return _refused(receiver, read)
        body = read
    answer = await receiver.accept(body, remote)
    if answer.reject:
        receiver.metrics.rejected.labels(answer.reject).inc()
    else:
        receiver.metrics.accept_seconds.observe(time.perf_counter() - started)
    return _answer(answer)


async def _read(request: web.Request, authenticated: bool = True) -> bytes | Answer:
    receiver, limit = request.app[RECEIVER], request.app[MAX_BODY]
    timeout = request.app[BODY_TIMEOUT]
    remote = request.remote or "?"
    too_large = f"the body is larger than the limit of {limit} bytes (max_body)"
    if request.content_length is not None and request.content_length > limit:
        return receiver.refuse(413, "too_large", too_large, remote, journal=authenticated)
    gate = getattr(request.protocol, "gate", None)
    if gate is not None and not authenticated:
        gate.reading_unauthenticated(request.protocol)
    try:
        async with asyncio.timeout(timeout):  # no task per request, unlike wait_for
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return receiver.refuse(413, "too_large", too_large, remote, journal=authenticated)
    except (web.RequestPayloadError, ConnectionError) as exc:  # bad encoding, client gone
        if gate is not None:
            gate.tally.note("unreadable bodies", " ".join(str(exc).split()))
        problem = " ".join(str(exc).split()).removeprefix("400, message: ")
        return receiver.refuse(400, "invalid_json", f"the body could not be read: {problem}",
                               remote, journal=False)
    except RuntimeError:  # aiohttp: "Connection closed." (the gate closed it: at the limit)
        if request.transport is not None:
            raise
        return receiver.refuse(400, "invalid_json", "the body could not be read: the "
                               "connection was closed", remote, journal=False)
    except TimeoutError:
        if gate is not None:
            gate.tally.note(f"bodies slower than the {timeout:g}s body timeout")
        return receiver.refuse(408, "too_slow", f"the body did not arrive within {timeout:g}s "
                               "(body_timeout)", remote, journal=False)
    finally:
        if gate is not None and not authenticated:
            gate.busy(request.protocol)


def _refused(receiver: Receiver, answer: Answer) -> web.Response:
    receiver.metrics.rejected.labels(answer.reject).inc()
    response = _answer(answer)
    if answer.status in (400, 408, 413):  # the rest of the body is not worth reading
        response.force_close()
    return response


_last_warning: dict[str, float] = {}
WARNED_CLIENTS = 256  # clients warned about individually per minute; more are only counted


def _warn_unauthenticated(request: web.Request, remote: str, problem: str) -> None:
    """One log line per client per minute: a misconfigured sender must be visible.
    Beyond :data:`WARNED_CLIENTS` clients a minute (addresses rotated by an attacker)
    they are counted in the gate's one-line tally, and the memory stays bounded."""
    now = time.monotonic()
    if remote not in _last_warning and len(_last_warning) >= WARNED_CLIENTS:
        for key in [k for k, t in _last_warning.items() if now - t >= 60]:
            del _last_warning[key]
        if len(_last_warning) >= WARNED_CLIENTS:
            gate = getattr(request.protocol, "gate", None)
            if gate is not None:
                gate.tally.note("unauthenticated requests", f"{remote}: {problem}")
            return
    if now - _last_warning.get(remote, -60.0) >= 60:
        _last_warning[remote] = now
        log.warning("refused an alert from %s: %s", remote, problem)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problem = await asyncio.to_thread(request.app[RECEIVER].readiness)
    if problem:
        return web.json_response({"status": "not ready", "reason": problem}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    receiver = request.app[RECEIVER]
    text = receiver.metrics.render(receiver.journal.capture_counts(), receiver.queue_depth())
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})


def _authorized(request: web.Request) -> None:
    """The status API shows alert contents: the same authentication as POSTs."""
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    problem = request.app[AUTH].check(request.headers.get("Authorization"), None, b"",
                                      bool(peer))
    if problem:
        raise web.HTTPUnauthorized(text=problem)


async def list_captures(request: web.Request) -> web.Response:
    _authorized(request)
    receiver = request.app[RECEIVER]
    state = request.query.get("state") or None
    if state and state not in ("queued", "running", "done", "failed"):
        raise web.HTTPBadRequest(text=f"state {state!r} is not queued, running, done or failed")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a whole number") from None
    rows = receiver.journal.captures(state, max(1, min(limit, 1000)))
    return web.json_response({"captures": [receiver.capture_view(r) for r in rows]})


async def get_capture(request: web.Request) -> web.Response:
    _authorized(request)
    receiver = request.app[RECEIVER]
    row = receiver.journal.capture(request.match_info["id"])
    if row is None:
        raise web.HTTPNotFound(text=f"no capture {request.match_info['id']}")
    return web.json_response(receiver.capture_view(row))


async def get_alert(request: web.Request) -> web.Response:
    _authorized(request)
    receiver = request.app[RECEIVER]
    row = receiver.journal.alert(request.match_info["id"])
    if row is None:
        raise web.HTTPNotFound(text=f"no alert {request.match_info['id']}")
    return web.json_response(receiver.alert_view(row))


async def expect(request: web.Request) -> None:
    """``Expect: 100-continue`` as aiohttp answers it; any other expectation is a 417 in
    one line of JSON (aiohttp's own answers it in plain text, before any middleware)."""
    value = request.headers.get("Expect", "")
    if request.version != HttpVersion11:
        return
    if value.lower() != "100-continue":
        raise web.HTTPExpectationFailed(
            text=json.dumps({"error": f"unknown expectation {value[:80]!r}: only "
                                      "100-continue is supported"}),
            content_type="application/json")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the response proper has not started


def build_app(receiver: Receiver, auth: Authenticator, max_body: int,
              body_timeout: float = 30.0) -> web.Application:
    """The application; the caller starts and stops ``receiver`` around serving it."""
    app = web.Application(client_max_size=max_body, middlewares=[errors])
    app[RECEIVER], app[AUTH], app[MAX_BODY] = receiver, auth, max_body
    app[BODY_TIMEOUT] = body_timeout
    app.router.add_post("/", accept, expect_handler=expect)
    app.router.add_post("/falco", accept, expect_handler=expect)
    app.router.add_get("/healthz", healthz, expect_handler=expect)
    app.router.add_get("/readyz", readyz, expect_handler=expect)
    app.router.add_get("/metrics", metrics, expect_handler=expect)
    app.router.add_get("/api/v1/captures", list_captures, expect_handler=expect)
    app.router.add_get("/api/v1/captures/{id}", get_capture, expect_handler=expect)
    app.router.add_get("/api/v1/alerts/{id}", get_alert, expect_handler=expect)
    return app
