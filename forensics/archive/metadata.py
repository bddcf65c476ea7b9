"""Container and Kubernetes identity from ``config.dump`` and ``spec.dump``.

The engine is named by the spec annotation ``io.container.manager``
(``libpod`` for Podman, ``cri-o`` for CRI-O); anything else is containerd,
as checkpointctl decides. Kubernetes identity comes from the CRI-O/Podman
annotations (``io.kubernetes.pod.*``), containerd's
(``io.kubernetes.cri.sandbox-*``) or checkpoint annotations
(``org.criu.checkpoint.*``), the first that names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from forensics.limits import MAX_JSON_DEPTH

_FRACTION = re.compile(r"(?<=:\d\d)\.\d+")
ENGINE_BY_MANAGER = {"libpod": "Podman", "cri-o": "CRI-O"}

_POD_KEYS = (
    "io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name", "org.criu.checkpoint.pod.name",
)
_NS_KEYS = (
    "io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace",
    "org.criu.checkpoint.pod.namespace",
)
_CTR_KEYS = (
    "io.kubernetes.container.name", "io.kubernetes.cri.container-name",
    "org.criu.checkpoint.container.name",
)
_UID_KEYS = (
    "io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid", "org.criu.checkpoint.pod.uid",
)


@dataclass(frozen=True)
class ContainerInfo:
    """What checkpointctl shows about the container."""

    name: str
    id: str
    image: str
    runtime: str
    created: str
    checkpointed: str
    engine: str


@dataclass(frozen=True)
class KubernetesIdentity:
    """The pod the container belonged to, where the archive names it."""

    pod: str | None
    namespace: str | None
    container: str | None
    pod_uid: str | None

    @property
    def known(self) -> bool:
        return self.pod is not None and self.namespace is not None


def parse_json_object(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse a JSON object nested at most ``max_depth`` deep; ValueError with a short
    reason otherwise (never a RecursionError: the members are the attacker's)."""
    import json  # here, not at the top: memparse never reads metadata (~1.5 ms at start-up)

    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(f"JSON nested more than {max_depth} levels deep") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"JSON {type(value).__name__}, expected an object")
    if json_depth(value, max_depth) > max_depth:
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    return value


def json_depth(value: Any, stop: int) -> int:
    """How deep ``value`` nests (a scalar: 0), walked iteratively; stops past ``stop``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict) else item
                    if isinstance(item, list) else None)
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > stop:
            return deepest
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return deepest


def annotations_of(spec: dict[str, Any]) -> dict[str, str]:
    raw = spec.get("annotations")
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items()}


def _first(annotations: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = annotations.get(key)
        if value:
            return value
    return None


def rfc3339_seconds(value: Any) -> str:
    """Format a config.dump timestamp as Go's time.RFC3339 does (whole seconds)."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return ""
    text = _FRACTION.sub("", value.replace("Z", "+00:00"), count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    formatted = moment.isoformat()
    return formatted.replace("+00:00", "Z")


def container_info(config: dict[str, Any], annotations: dict[str, str]) -> ContainerInfo:
    """Engine, name and times. The engine is spec.dump's ``io.container.manager``; without
    it (containerd writes none, and a spec.dump may be unreadable), config.dump's shape
    decides: only libpod's own config has a ``lockID``. checkpointctl says containerd
    whenever the annotation is missing, which misnames damaged Podman archives."""
    manager = annotations.get("io.container.manager")
    if manager is None and "lockID" in config:
        manager = "libpod"
    engine = ENGINE_BY_MANAGER.get(manager or "", "containerd")
    if engine == "Podman":
        name = str(config.get("name") or "")
        created = rfc3339_seconds(config.get("createdTime"))
    elif engine == "CRI-O":
        try:
            meta = parse_json_object(annotations.get("io.kubernetes.cri-o.Metadata", "{}"))
        except ValueError:
            meta = {}
        name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
        created = annotations.get("io.kubernetes.cri-o.Created", "")
    else:
        name = annotations.get("io.kubernetes.cri.container-name", "") or annotations.get(
            "org.criu.checkpoint.container.name", ""
        )
        created = rfc3339_seconds(config.get("createdTime"))
    return ContainerInfo(
        name=name,
        id=str(config.get("id") or ""),
        image=str(config.get("rootfsImageName") or ""),
        runtime=str(config.get("runtime") or ""),
        created=created,
        checkpointed=rfc3339_seconds(config.get("checkpointedTime")),
        engine=engine,
    )


def kubernetes_identity(annotations: dict[str, str]) -> KubernetesIdentity:
    return KubernetesIdentity(
        pod=_first(annotations, _POD_KEYS),
        namespace=_first(annotations, _NS_KEYS),
        container=_first(annotations, _CTR_KEYS),
        pod_uid=_first(annotations, _UID_KEYS),
    )
