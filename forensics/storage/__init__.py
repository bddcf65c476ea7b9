"""Checkpoint archives as OCI images: push, pull, and the backends behind them.

The calls other code makes are :func:`push_archive` and :func:`pull_archive`
(see :mod:`.api`); a backend (:class:`~.base.Backend`) is ``native`` (the OCI
Distribution API over requests, the default), ``buildah`` (the classic
buildah sequence), or the OCI layout directory for ``oci:`` references. Heavy
modules are imported lazily.
"""

from __future__ import annotations

from forensics.storage.annotations import CheckpointMeta, Platform
from forensics.storage.api import (
    csi_home,
    default_layout,
    pull_archive,
    push_archive,
    resolve_target,
)
from forensics.storage.base import PullResult, PushResult, RegistryOptions
from forensics.storage.reference import ImageRef, LayoutRef, parse_target

__all__ = [
    "CheckpointMeta",
    "ImageRef",
    "LayoutRef",
    "Platform",
    "PullResult",
    "PushResult",
    "RegistryOptions",
    "csi_home",
    "default_layout",
    "parse_target",
    "pull_archive",
    "push_archive",
    "resolve_target",
]
