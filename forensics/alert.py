"""Falco alerts: the JSON Falco's ``http_output`` and falcosidekick's webhook send.

The typed :class:`Alert` is csi's one form of an alert from the receiver to the
signed report: the journal, the capture request, the Argo workflow's ``alert``
parameter, ``csi step --alert`` and ``csi analyze --alert FILE`` all carry it
as JSON written by :func:`encode_alert` (or :meth:`Alert.to_json`) and read back
by :func:`decode_alert` (or :func:`alert_from_json`), so every way in passes the
same refusals of hostile JSON. This is the low layer: it imports only
:mod:`forensics.errors`, and analyzers may import it.

Falco (``json_output: true``) sends ``time`` (RFC 3339, 9 fractional digits),
``rule``, ``priority`` (``Emergency`` … ``Debug``), ``source``, ``hostname``,
``output``, ``tags`` and ``output_fields`` (dotted keys; values are strings,
numbers or ``null``). falcosidekick forwards the same object plus ``uuid``
(and re-serialises ``time`` with trailing zeros dropped, so 0–9 fractional
digits are accepted). Anything else is an :class:`InvalidAlert` whose message
is the one-line reason the HTTP answer carries.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forensics.errors import CsiError

# Syslog order: the index is the severity rank, higher is more severe.
PRIORITIES = ("Debug", "Informational", "Notice", "Warning", "Error", "Critical", "Alert",
              "Emergency")
_PRIORITY_BY_NAME = {name.lower(): name for name in PRIORITIES} | {"info": "Informational"}
SEVERITY = {name: rank for rank, name in enumerate(PRIORITIES)}

_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?"
                   r"(Z|z|[+-]\d{2}:\d{2})$")
FieldValue = str | int | float | bool | None
MAX_FIELDS = 1000
MAX_BYTES = 1024 * 1024  # an alert file read whole (csi analyze --alert): the receiver's max_body
MAX_DEPTH = 32  # nesting of objects and arrays; Falco's alerts have 2
# A \uD800-\uDFFF escape: only then can a decoded string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


class InvalidAlert(CsiError):
    """The payload is not a Falco alert; the message says why, in one line."""


@dataclass(frozen=True)
class Alert:
    """One validated Falco alert, as received (``raw``) and as csi reads it."""

    rule: str
    priority: str  # canonical long name: "Critical"
    time: str  # as sent
    time_ns: int  # nanoseconds since the epoch
    source: str
    hostname: str
    output: str
    tags: tuple[str, ...]
    output_fields: Mapping[str, FieldValue]
    uuid: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    fingerprint: str = ""

    @property
    def id(self) -> str:
        """The alert's id in csi: derived from the fingerprint, so a repeat has the same id."""
        return alert_id(self.fingerprint)

    @property
    def severity(self) -> int:
        return SEVERITY[self.priority]

    def field(self, name: str) -> FieldValue:
        return self.output_fields.get(name)

    @property
    def container_id(self) -> str:
        """Falco's ``container.id`` (12 hex digits, or ``host``); empty when unknown."""
        return self.text("container.id")

    @property
    def pod(self) -> str:
        """``k8s.pod.name``; empty when unknown."""
        return self.text("k8s.pod.name")

    @property
    def namespace(self) -> str:
        """``k8s.ns.name``; empty when unknown."""
        return self.text("k8s.ns.name")

    def to_json(self) -> dict[str, Any]:
        """The alert as received, as a JSON object (what :func:`alert_from_json` reads).

        A copy (at most :data:`MAX_DEPTH` deep): changing it never changes this alert."""
        copied: dict[str, Any] = copy.deepcopy(self.raw)
        return copied

    def text(self, name: str) -> str:
        """An output field as text; empty for ``null``, absent and Falco's ``<NA>``."""
        value = self.output_fields.get(name)
        if value is None or isinstance(value, bool):
            return ""
        text = str(value).strip()
        return "" if text in ("<NA>", "N/A") else text


def alert_id(fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def canonical_priority(value: object) -> str:
    """``CRITICAL``, ``critical``, ``Critical`` → ``Critical``; ``info`` → ``Informational``."""
    if not isinstance(value, str) or value.strip().lower() not in _PRIORITY_BY_NAME:
        raise InvalidAlert(f"priority {value!r} is not a Falco priority "
                           f"({', '.join(reversed(PRIORITIES))})")
    return _PRIORITY_BY_NAME[value.strip().lower()]


def parse_time(value: object) -> int:
    """RFC 3339 time with up to 9 fractional digits → nanoseconds since the epoch."""
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidAlert(f"time {value!r} is not an RFC 3339 time "
                           "(like 2026-11-22T07:09:53.912345678Z)")
    date, clock, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{'+00:00' if zone in 'Zz' else zone}")
    except ValueError as exc:
        raise InvalidAlert(f"time {value!r} is not a valid date/time: {exc}") from None
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def fingerprint(data: Mapping[str, Any]) -> str:
    """Identity for idempotency: falcosidekick's ``uuid``, else a hash of the canonical alert."""
    uuid = data.get("uuid")
    if isinstance(uuid, str) and uuid.strip():
        return f"uuid:{uuid.strip().lower()}"
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _text(data: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidAlert(f"required field {key!r} is missing")
        return ""
    if not isinstance(value, str):
        raise InvalidAlert(f"field {key!r} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise InvalidAlert(f"required field {key!r} is empty")
    return value


def _fields(value: object) -> dict[str, FieldValue]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidAlert(f"output_fields must be an object, not {type(value).__name__}")
    if len(value) > MAX_FIELDS:
        raise InvalidAlert(f"output_fields has {len(value)} entries (at most {MAX_FIELDS})")
    for key, item in value.items():
        if item is not None and not isinstance(item, str | int | float | bool):
            raise InvalidAlert(f"output_fields[{key!r}] must be a string, number or null, "
                               f"not {type(item).__name__}")
    return dict(value)


def _tags(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidAlert("tags must be a list of strings")
    return tuple(value)


def parse_alert(data: object) -> Alert:
    """Validate one decoded JSON value as a Falco alert."""
    if not isinstance(data, dict):
        raise InvalidAlert(f"the alert must be a JSON object, not {_json_type(data)}")
    for key in ("rule", "priority", "time"):
        if key not in data:
            raise InvalidAlert(f"required field {key!r} is missing")
    rule = _text(data, "rule", required=True)
    priority = canonical_priority(data["priority"])
    time_ns = parse_time(data["time"])
    source = _text(data, "source") or "syscall"  # Falco < 0.31 omitted it: syscalls only
    return Alert(
        rule=rule, priority=priority, time=data["time"], time_ns=time_ns, source=source,
        hostname=_text(data, "hostname"), output=_text(data, "output"),
        tags=_tags(data.get("tags")), output_fields=_fields(data.get("output_fields")),
        uuid=_text(data, "uuid"), raw=data, fingerprint=fingerprint(data),
    )


def encode_alert(alert: Alert) -> str:
    """The alert as JSON text (keys sorted, ASCII): the one serialised form csi passes on.

    :func:`decode_alert` reads it back to an equal alert with the same fingerprint.
    """
    return json.dumps(alert.raw, sort_keys=True, allow_nan=False)


def alert_from_json(value: object) -> Alert:
    """An alert from a decoded JSON value (a request's or a report's ``alert`` object).

    It goes through :func:`decode_alert`, so that a value from a journal, a
    worker or a file meets the same refusals as an HTTP body.
    """
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidAlert(f"the alert is not JSON: {exc}") from None
    return decode_alert(text.encode())


def decode_alert(body: bytes | str) -> Alert:
    """Decode and validate an HTTP body; the error says what is wrong with it.

    The body is the attacker's: beyond JSON syntax it must hold no lone UTF-16
    surrogate (``"\\ud800"`` decodes to a string no UTF-8 encoder, SQLite or
    report writer accepts), no number that is not finite (``1e999`` would
    become ``inf``) or longer than Python's integer limit, and no nesting
    deeper than :data:`MAX_DEPTH` (every later reader walks it). Text is
    read as its UTF-8 bytes: text holding a lone surrogate is refused.
    """
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidJson(f"the alert is not Unicode text: a lone UTF-16 surrogate "
                              f"at character {exc.start}") from None
    try:
        data = json.loads(body, parse_constant=_reject_constant, parse_float=_finite)
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                          ) from None
    except _NotJson as exc:
        raise InvalidJson(str(exc)) from None
    except RecursionError:
        raise InvalidJson("invalid JSON: nested too deeply") from None
    except ValueError:  # an integer longer than sys.get_int_max_str_digits()
        raise InvalidJson("invalid JSON: an integer has more than "
                          f"{sys.get_int_max_str_digits()} digits") from None
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        _check_depth(data)
    if _SURROGATE_ESCAPE.search(body):
        _check_strings(data)
    return parse_alert(data)


def _children(value: object) -> list[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    return list(value) if isinstance(value, list) else []


def _check_depth(data: object) -> None:
    """Nesting deeper than :data:`MAX_DEPTH` is refused (iteratively: no recursion)."""
    level: list[object] = [data]
    for _ in range(MAX_DEPTH + 1):
        level = [c for v in level for c in _children(v) if isinstance(c, dict | list)]
        if not level:
            return
    raise InvalidJson(f"invalid JSON: nested deeper than {MAX_DEPTH} levels")


def _check_strings(data: object) -> None:
    """Every string (keys too) must be encodable as UTF-8: no lone surrogate."""
    stack: list[object] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidJson(f"invalid JSON: the string {value[:40]!r} holds a lone "
                                  f"UTF-16 surrogate ({exc.object[exc.start]!r}), which is "
                                  "not Unicode text") from None
        else:
            stack.extend(_children(value))


class InvalidJson(InvalidAlert):
    """The body is not JSON at all."""


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> None:
    raise _NotJson(f"invalid JSON: {name} is not a JSON value")


def _finite(text: str) -> float:
    """JSON numbers only as finite floats: ``1e999`` is refused, never ``inf``."""
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"invalid JSON: the number {text[:40]} is out of range "
                       "(not a finite double)")
    return value


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
