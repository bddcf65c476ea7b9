"""Retention of checkpoint archives on a node (``csi gc``).

The kubelet never deletes what it checkpoints; csi deletes a node's copy
after a verified push, and ``csi gc`` prunes what is left: at most N per
pod/container (newest kept), nothing older than an age, and the total under
a size. Only regular files whose names follow the kubelet's pattern
(``checkpoint-<pod>_<ns>-<ctr>-<RFC3339>.tar``) are ever touched.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from forensics import units
from forensics.errors import UsageError

KUBELET_NAME = re.compile(
    r"^checkpoint-(?P<pod>.+)_(?P<ns>[a-z0-9-]+)-(?P<ctr>[a-z0-9-]+)-"
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))\.tar$")


@dataclass(frozen=True)
class Policy:
    max_per_container: int | None = None
    max_age: float | None = None  # seconds
    max_total: int | None = None  # bytes


@dataclass(frozen=True)
class Archive:
    path: str
    key: str  # namespace/pod/container
    mtime: float
    size: int


@dataclass(frozen=True)
class Victim:
    path: str
    why: str


def parse_age(text: str) -> float:
    """An age in the one duration grammar (:mod:`forensics.units`) → seconds."""
    try:
        return units.parse_duration(text)
    except ValueError:
        raise UsageError(f"cannot read the age {text!r}", hint=units.DURATION_HINT) from None


def parse_size(text: str) -> int:
    """A size in the one size grammar (:mod:`forensics.units`) → bytes."""
    try:
        return units.parse_size(text)
    except ValueError:
        raise UsageError(f"cannot read the size {text!r}", hint=units.SIZE_HINT) from None


def archives(directory: str) -> list[Archive]:
    """The kubelet-named archives directly in ``directory``, newest first."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise UsageError(f"{directory}: cannot list", why=exc.strerror or str(exc)) from None
    found = []
    for name in names:
        match = KUBELET_NAME.match(name)
        path = os.path.join(directory, name)
        if not match or os.path.islink(path) or not os.path.isfile(path):
            continue
        st = os.stat(path)
        found.append(Archive(path, f"{match['ns']}/{match['pod']}/{match['ctr']}",
                             st.st_mtime, st.st_size))
    return sorted(found, key=lambda a: a.mtime, reverse=True)


def plan(found: list[Archive], policy: Policy, now: float) -> Iterator[Victim]:
    kept: list[Archive] = []
    per_key: dict[str, int] = {}
    for a in found:
        per_key[a.key] = per_key.get(a.key, 0) + 1
        if policy.max_per_container is not None and per_key[a.key] > policy.max_per_container:
            yield Victim(a.path, f"more than {policy.max_per_container} for {a.key}")
        elif policy.max_age is not None and now - a.mtime > policy.max_age:
            yield Victim(a.path, f"older than {policy.max_age:g} s")
        else:
            kept.append(a)
    total = sum(a.size for a in kept)
    for a in reversed(kept):  # oldest first
        if policy.max_total is None or total <= policy.max_total:
            break
        total -= a.size
        yield Victim(a.path, f"total over {policy.max_total} bytes")


def prune(directory: str, policy: Policy, *, dry_run: bool = False,
          now: float | None = None) -> list[Victim]:
    victims = list(plan(archives(directory), policy, time.time() if now is None else now))
    if not dry_run:
        for v in victims:
            os.unlink(v.path)
    return victims
