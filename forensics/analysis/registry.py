"""Finding analyzers: the ``csi.analyzers`` entry-point group.

csi's own analyzers register there too (pyproject.toml), so a third party's
package adds an analyzer the same way, without csi importing it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from forensics.analysis.base import Analyzer
from forensics.errors import UsageError

GROUP = "csi.analyzers"


@dataclass(frozen=True)
class Broken:
    """An entry point that could not be loaded; reported as a failed analyzer."""

    name: str
    reason: str


def discover() -> tuple[list[Analyzer], list[Broken]]:
    """Instantiate every registered analyzer, in name order."""
    found: list[Analyzer] = []
    broken: list[Broken] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            found.append(ep.load()())
        except Exception as exc:  # a third-party plugin may fail in any way
            broken.append(Broken(ep.name, f"cannot load {ep.value}: {exc}"))
    return found, broken


def select(analyzers: list[Analyzer], names: list[str]) -> list[Analyzer]:
    """The analyzers named (all when ``names`` is empty); unknown names are a usage error."""
    if not names:
        return analyzers
    by_name = {a.name: a for a in analyzers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(f"unknown analyzer {', '.join(unknown)}",
                         hint=f"known: {', '.join(sorted(by_name))}")
    return [by_name[n] for n in names]
