"""Canonical JSON (RFC 8785, JCS) and the per-part digests of a signed document.

A report is signed over its canonical bytes, and stored as exactly those
bytes, so any change to the file, even one space, is seen. JCS was chosen
over "``json.dumps(sort_keys=True)``" because it is a standard other tools
can reproduce: keys sorted by UTF-16 code units, no insignificant
whitespace, strings escaped minimally, numbers as ECMAScript prints them.
(Integers beyond 2**53 are written exactly, where JCS would round them.)

Archive data is not always clean text: :func:`json_safe` turns what
``surrogateescape`` decoding leaves behind (lone surrogates for bytes that
are not UTF-8) into visible ``\\xNN`` escapes, tuples into lists, and
non-finite floats into strings, before anything is signed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from forensics.report.errors import ReportError

_SURROGATE = re.compile("[\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that :func:`canonical_bytes` can encode (see the module doc).

    Iterative: archive data nested thousands of levels deep cannot exhaust the recursion
    limit."""
    top: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, top, 0)]  # (value, where it goes, key)
    while stack:
        item, into, key = stack.pop()
        if isinstance(item, Mapping):
            copy: dict[str, Any] = {}
            into[key] = copy
            for k, v in item.items():
                safe_key = k if type(k) is str and not _SURROGATE.search(k) else _safe(str(k))
                copy[safe_key] = _safe(v)
                if copy[safe_key] is _NESTED:
                    stack.append((v, copy, safe_key))
        elif isinstance(item, Sequence | set | frozenset) and not isinstance(item, str | bytes):
            out = [_safe(v) for v in item]
            into[key] = out
            stack.extend((v, out, i) for i, v in enumerate(item) if out[i] is _NESTED)
        else:
            into[key] = _safe(item)
    return top[0]


_NESTED = object()  # json_safe: a container, copied from the stack


def _safe(value: Any) -> Any:
    """A scalar made safe, or _NESTED for a container."""
    if isinstance(value, str):
        return _SURROGATE.sub(_visible, value) if _SURROGATE.search(value) else value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return _safe(value.decode("utf-8", "surrogateescape"))
    if isinstance(value, Mapping | Sequence | set | frozenset):
        return _NESTED
    return _safe(str(value))


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 serialisation of ``value`` (which must be :func:`json_safe`).

    Iterative (a stack of the containers being written): no depth of nesting can
    exhaust the recursion limit."""
    out: list[str] = []
    append = out.append
    dumps = json.dumps
    stack: list[tuple[Iterator[tuple[str, Any]], str]] = []  # (what is left, the closing mark)
    item = value
    while True:
        if isinstance(item, str):
            append(dumps(item, ensure_ascii=False))
        elif item is None:
            append("null")
        elif item is True:
            append("true")
        elif item is False:
            append("false")
        elif isinstance(item, int):
            append(str(item))
        elif isinstance(item, float):
            append(es_number(item))
        elif isinstance(item, dict):
            append("{")
            keys = sorted(item, key=_utf16)
            stack.append((iter([(("," if i else "") + dumps(k, ensure_ascii=False) + ":",
                                 item[k]) for i, k in enumerate(keys)]), "}"))
        elif isinstance(item, list):
            append("[")
            stack.append((iter([("," if i else "", v) for i, v in enumerate(item)]), "]"))
        else:
            raise ReportError(f"cannot encode a {type(item).__name__} in a report")
        while stack:
            entries, close = stack[-1]
            entry = next(entries, None)
            if entry is None:
                append(close)
                stack.pop()
                continue
            prefix, item = entry
            if prefix:
                append(prefix)
            break
        else:
            break
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate that json_safe did not see
        raise ReportError("a report value is not valid Unicode", why=str(exc)) from None


def _utf16(key: str) -> bytes:
    if not isinstance(key, str):
        raise ReportError(f"a report object has a non-string key {key!r}")
    return key.encode("utf-16-be", "surrogatepass")


def es_number(x: float) -> str:
    """A finite double as ECMAScript's Number.prototype.toString prints it (JCS numbers)."""
    if not math.isfinite(x):
        raise ReportError(f"{x} cannot be written in JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # the value is 0.<digits> x 10**n
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = (digits[0] + ("." + digits[1:] if k > 1 else "")
                + "e" + ("+" if e >= 0 else "-") + str(abs(e)))
    return sign + text


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pointer(parts: Sequence[str | int]) -> str:
    """A JSON pointer (RFC 6901) from its parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def part_digests(document: Mapping[str, Any], *, skip: str = "signature") -> dict[str, str]:
    """sha256 of the canonical bytes of every part of ``document``, by JSON pointer.

    Objects are descended into down to their scalar members; list items are
    digested whole (a finding, a process). On a failed verification these
    name what changed: ``/findings/3``, ``/custody/archive/sha256``.
    """
    out: dict[str, str] = {}
    stack: list[tuple[Any, list[str | int]]] = [
        (value, [key]) for key, value in reversed(list(document.items())) if key != skip]
    while stack:  # iterative: objects may nest deeper than the recursion limit
        value, parts = stack.pop()
        if isinstance(value, dict) and value:
            stack.extend((item, [*parts, key]) for key, item in reversed(value.items()))
        elif isinstance(value, list) and value and len(parts) > 0:
            for i, item in enumerate(value):
                out[pointer([*parts, i])] = sha256_hex(canonical_bytes(item))
        else:
            out[pointer(parts)] = sha256_hex(canonical_bytes(value))
    return out
