"""A tiny HTML builder where escaping is the default, not a thing to remember.

Every value that is not already :class:`Safe` is escaped (text and
attributes), so archive content (file names, command lines, environment
values) can only ever render as text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any


class Safe(str):
    """Markup that is already escaped (made by :func:`tag`, :func:`join` or :func:`esc`)."""

    __slots__ = ()


def esc(value: object) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def _attrs(attrs: dict[str, Any]) -> str:
    out = []
    for key, value in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(f" {name}")
        else:
            out.append(f' {name}="{esc(value)}"')
    return "".join(out)


def tag(element: str, /, *children: object, **attrs: Any) -> Safe:
    """``<element attrs>children</element>``; children and attribute values are escaped."""
    return Safe(f"<{element}{_attrs(attrs)}>{join(children)}</{element}>")


def void(element: str, /, **attrs: Any) -> Safe:
    return Safe(f"<{element}{_attrs(attrs)}>")


def join(children: Iterable[object], sep: str = "") -> Safe:
    return Safe(sep.join(esc(c) for c in children if c is not None))


def table(headers: Iterable[str], rows: Iterable[tuple[Iterable[object], str | None]],
          **attrs: Any) -> Safe:
    """A table: ``rows`` are (cells, row class or None)."""
    head = tag("thead", tag("tr", *(tag("th", h, scope="col") for h in headers)))
    body = tag("tbody", *(tag("tr", *(tag("td", c) for c in cells), class_=cls)
                          for cells, cls in rows))
    return tag("table", head, body, **attrs)


def value(item: Any) -> Safe:
    """Any JSON value as readable HTML: text, a list, or pretty JSON in a <pre>."""
    if item is None:
        return tag("span", "—", class_="muted")
    if isinstance(item, bool):
        return esc("yes" if item else "no")
    if isinstance(item, str | int | float):
        return tag("span", item, class_="v")
    if isinstance(item, list) and all(isinstance(i, str | int | float) for i in item):
        return esc(", ".join(str(i) for i in item)) if item else tag("span", "none",
                                                                     class_="muted")
    return tag("pre", json.dumps(item, indent=1, ensure_ascii=False, sort_keys=True))
