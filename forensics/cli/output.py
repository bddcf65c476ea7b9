"""``-o/--output FORMAT``: one option, one grammar, on every command with output.

``-o`` always selects a format (``text``, ``json``, ``yaml``, and a command's own
extra ones such as ``md``); a file is ``-f/--out-file`` or a positional, a
directory ``--out-dir``. ``--format`` is the same option under checkpointctl's
name, and its words ``tree``/``table`` still mean ``text``.

Free of click and of json/yaml at import: ``csi memparse`` parses this grammar
with argparse and must start fast.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

FORMATS = ("text", "json", "yaml")
TEXT_ALIASES = ("tree", "table")  # checkpointctl's and csi's former words for text


def normal(fmt: str) -> str:
    """``tree`` and ``table`` are ``text``; every other format is itself."""
    return "text" if fmt in TEXT_ALIASES else fmt


def output_option(*extra: str, default: str = "text", aliases: tuple[str, ...] = TEXT_ALIASES,
                  dest: str = "fmt") -> Callable[[Any], Any]:
    """The click option ``-o/--output`` (alias ``--format``), as ``fmt``, normalised."""
    import click

    choices = [*FORMATS, *extra, *aliases]

    def to_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
        return normal(value)

    return click.option("-o", "--output", "--format", dest, type=click.Choice(choices),
                        default=default, show_default=True, callback=to_format,
                        help=f"Output format: {'|'.join([*FORMATS, *extra])} "
                             f"({'/'.join(aliases)}: text; --format is an alias).")


def dump(value: Any, fmt: str, stream: IO[str] | None = None) -> None:
    """Write ``value`` as JSON or YAML to ``stream`` (default: standard output)."""
    if fmt == "yaml":
        dump_yaml(value, stream)
    else:
        from forensics.cli.common import dump_json

        dump_json(value, stream)


def dump_yaml(value: Any, stream: IO[str] | None = None) -> None:
    """YAML of plain data (safe representers only). Control characters and lone
    surrogates (attacker-written names, command lines) are written as YAML
    escapes in double-quoted scalars, never raw to the terminal."""
    import yaml

    # The pure-Python emitter: libyaml's refuses a lone surrogate outright.
    text = yaml.dump(value, Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=1 << 16)
    (stream or sys.stdout).write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
