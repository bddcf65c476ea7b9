"""Names and ids that csi hands to other programs and APIs, checked where they enter.

Alert fields are written by whoever can make Falco fire, so a container
"name" may be ``--latest``: given to podman, it would checkpoint *another*
container. Every name that reaches a command line, a URL path or a capture
request is checked here against what Kubernetes or the runtime itself allows,
so an accepted value never starts with ``-``, never holds ``/``, ``..``,
whitespace or a control character, and is bounded in length:

- namespace, Kubernetes container name: an RFC 1123 label (``[a-z0-9]``,
  inner ``-``, at most 63), as the API server validates them;
- pod and node names: a DNS-1123 subdomain (labels joined by ``.``, at most 253);
- podman container name: podman's own rule ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``
  (at most 253 here: csi puts it in a file name);
- container id: 12 to 64 hex digits (Falco's short id, a full id),
  optionally with the ``containerd://``, ``cri-o://`` or ``docker://`` prefix
  Kubernetes puts in ``containerStatuses[].containerID``.

``*_problem`` functions return ``""`` for a valid value or a one-line reason in
which the value is shown with :func:`shown` (repr-style: control characters
and other hostile code points are escapes, never raw); :func:`require` raises
:class:`InvalidName` with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from forensics.errors import UsageError

LABEL_MAX = 63
SUBDOMAIN_MAX = 253
PODMAN_NAME_MAX = 253
ID_PREFIXES = ("containerd://", "cri-o://", "docker://")
SHOWN_MAX = 80

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_PODMAN_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_HEX_ID = re.compile(r"[0-9a-fA-F]{12,64}")


class InvalidName(UsageError):
    """A name or id that Kubernetes or the runtime would never have given (exit 2)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason, hint=f"csi takes only a valid {kind}; "
                         "check where this value came from")
        self.kind = kind
        self.reason = reason


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """``value`` for a message: repr-quoted (escapes, no raw control characters), bounded."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return ascii(text)
    return f"{text[:limit]!a}… ({len(text)} characters)"


def _problem(kind: str, value: object, pattern: re.Pattern[str], limit: int, rule: str,
             display: str | None = None) -> str:
    if not isinstance(value, str):
        return f"{kind} is not text but {type(value).__name__}"
    what = f"{kind} {shown(value if display is None else display)}"
    if not value:
        return f"{what} has nothing after its prefix" if display else f"{kind} is empty"
    if len(value) > limit:
        return f"{what} is longer than {limit} characters"
    if value.startswith("-"):
        return f"{what} starts with '-' (it would be read as an option)"
    if not pattern.fullmatch(value):
        return f"{what} is not {rule}"
    return ""


_LABEL_RULE = "an RFC 1123 label (lowercase letters, digits and inner '-')"
_SUBDOMAIN_RULE = ("a DNS-1123 subdomain (lowercase letters, digits, inner '-', "
                   "labels joined by '.')")


def namespace_problem(value: object, kind: str = "namespace") -> str:
    """Why ``value`` is no Kubernetes namespace name, or ``""``."""
    return _problem(kind, value, _LABEL, LABEL_MAX, _LABEL_RULE)


def pod_problem(value: object, kind: str = "pod name") -> str:
    """Why ``value`` is no Kubernetes pod name, or ``""``."""
    return _problem(kind, value, _SUBDOMAIN, SUBDOMAIN_MAX, _SUBDOMAIN_RULE)


def node_problem(value: object, kind: str = "node name") -> str:
    """Why ``value`` is no Kubernetes node name, or ``""``."""
    return _problem(kind, value, _SUBDOMAIN, SUBDOMAIN_MAX, _SUBDOMAIN_RULE)


def container_problem(value: object, kind: str = "container name") -> str:
    """Why ``value`` is no Kubernetes container name, or ``""``."""
    return _problem(kind, value, _LABEL, LABEL_MAX, _LABEL_RULE)


def podman_name_problem(value: object, kind: str = "podman container name") -> str:
    """Why ``value`` is no podman container name, or ``""``."""
    return _problem(kind, value, _PODMAN_NAME, PODMAN_NAME_MAX,
                    "a podman container name or id ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")


def container_id_problem(value: object, kind: str = "container id") -> str:
    """Why ``value`` is no container id (optionally ``containerd://`` … prefixed), or ``""``."""
    if not isinstance(value, str):
        return f"{kind} is not text but {type(value).__name__}"
    prefix = next((p for p in ID_PREFIXES if value.startswith(p)), "")
    return _problem(kind, value[len(prefix):], _HEX_ID, 64,
                    "12 to 64 hex digits", display=value)


def podman_ref_problem(value: object, kind: str = "podman container name or id") -> str:
    """Why ``value`` names no podman container, by name or by id, or ``""``.

    (A podman id, full or a prefix, is hex and so matches podman's name rule.)"""
    return podman_name_problem(value, kind)


def require(check: Callable[[object], str], kind: str, value: object) -> str:
    """``value`` when ``check`` finds nothing wrong; else :class:`InvalidName`."""
    problem = check(value)
    if problem or not isinstance(value, str):
        raise InvalidName(kind, problem or f"{kind} is not text")
    return value


def require_k8s(*, namespace: str | None = None, pod: str | None = None,
                container: str | None = None, node: str | None = None,
                container_id: str | None = None) -> None:
    """:class:`InvalidName` for the first given (not ``None``) Kubernetes name or id that is
    invalid: a library entry point's guard before the names become URL path parts."""
    for check, kind, value in ((namespace_problem, "namespace", namespace),
                               (pod_problem, "pod name", pod),
                               (container_problem, "container name", container),
                               (node_problem, "node name", node),
                               (container_id_problem, "container id", container_id)):
        if value is not None:
            require(check, kind, value)
