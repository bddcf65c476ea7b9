"""Control characters made visible: the one helper every terminal rendering uses.

File names, command lines, environment values and container names come from
the container, so they may hold terminal escape sequences (``\\x1b]0;…``
retitles the window, ``\\x1b[2J`` clears it, ``\\r`` overwrites a line, a
newline forges one, U+202E reverses the text after it). Terminal views show
them as text instead of sending them to the responder's terminal: ``\\x1b``,
``\\n``, ``\\t``, ``\\x7f``, ``\\u202e``. The JSON of record keeps the exact
values; only what is printed for a human changes.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text
# (zero-width, bidirectional embeddings/overrides/isolates, line/paragraph separators, BOM)
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _show(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(value: object) -> str:
    """``value`` as text with every control character written out (``\\x1b``, ``\\n``)."""
    text = value if isinstance(value, str) else str(value)
    return _INVISIBLE.sub(_show, text)


def escape(value: object) -> str:
    """Text for rich markup: control characters visible, then rich's markup escaped."""
    from rich.markup import escape as markup_escape

    return markup_escape(visible(value))
