"""What a Workflow submitted to the Argo Server DOUBLE shows as it "runs".

No workflow controller runs here: a :class:`Script` says which steps of
csi-capture go through which phases with which outputs, and :func:`play`
turns it into the successive ``status`` objects the real Argo Server would
return (``status.nodes`` per step, global outputs, the exit handler), one per
GET (see :mod:`tests.doubles.argo_server`).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

GLOBALS = {"archive-path": "csi-archive-path", "node": "csi-node",
           "image-ref": "csi-image-ref", "sha256": "csi-sha256"}


@dataclass(frozen=True)
class StepPlan:
    """One step of the played workflow: the phases it goes through, its outputs."""

    name: str
    phases: tuple[str, ...] = ("Pending", "Running", "Succeeded")
    outputs: dict[str, str] = field(default_factory=dict)
    message: str = ""  # Argo's node message (set on failure)
    exit_handler: bool = False


@dataclass(frozen=True)
class Script:
    steps: tuple[StepPlan, ...]


def succeeding_script(image_ref: str = "registry.example/csi/evidence@sha256:" + "ab" * 32,
                      report_id: str = "r-0123456789abcdef") -> Script:
    """csi-capture's four steps succeed, with the outputs the real steps write."""
    return Script((
        StepPlan("checkpoint", outputs={"archive-path": "/var/lib/kubelet/checkpoints/c.tar",
                                        "node": "node-1"}),
        StepPlan("collect-push", outputs={"image-ref": image_ref, "sha256": "cd" * 32,
                                          "pushed": "true"}),
        StepPlan("analyze", outputs={"report-id": report_id, "verdict": "malicious"}),
        StepPlan("cleanup", outputs={"deleted": "true"}, exit_handler=True),
    ))


def failing_script(message: str = "Error (exit code 3)") -> Script:
    """collect-push fails; cleanup keeps the archive."""
    return Script((
        StepPlan("checkpoint", outputs={"archive-path": "/var/lib/kubelet/checkpoints/c.tar",
                                        "node": "node-1"}),
        StepPlan("collect-push", phases=("Pending", "Running", "Failed"), message=message),
        StepPlan("cleanup", outputs={"deleted": "false", "why": "not pushed"},
                 exit_handler=True),
    ))


def play(name: str, script: Script) -> list[dict[str, Any]]:
    """The successive ``status`` objects of a Workflow playing ``script``."""
    frames: list[dict[str, Any]] = [{}, {"phase": "Pending", "startedAt": _time(0)}]
    nodes: dict[str, dict[str, Any]] = {}
    root = {"id": name, "name": name, "displayName": name, "type": "Steps",
            "templateName": "main", "phase": "Running", "startedAt": _time(0)}
    nodes[name] = root
    outputs: list[dict[str, str]] = []
    failed: StepPlan | None = None
    clock = itertools.count(1)

    def snapshot(phase: str, **extra: Any) -> None:
        status = {"phase": phase, "startedAt": _time(0), "nodes": copy.deepcopy(nodes), **extra}
        if outputs:
            status["outputs"] = {"parameters": list(outputs)}
        frames.append(status)

    main_steps = [s for s in script.steps if not s.exit_handler]
    exit_steps = [s for s in script.steps if s.exit_handler]
    for index, step in enumerate(main_steps + exit_steps):
        if step.exit_handler and step is exit_steps[0]:
            root["phase"] = "Failed" if failed else "Succeeded"
            nodes[f"{name}-onexit"] = {"id": f"{name}-onexit", "name": f"{name}.onExit",
                                       "displayName": f"{name}.onExit", "type": "Steps",
                                       "templateName": "exit-handler", "phase": "Running",
                                       "startedAt": _time(next(clock))}
        if failed and not step.exit_handler:
            continue
        node_id = f"{name}-{1000000 + index}"
        parent = f"{name}.onExit" if step.exit_handler else name
        node: dict[str, Any] = {"id": node_id, "name": f"{parent}[0].{step.name}",
                                "displayName": step.name, "type": "Pod",
                                "templateName": step.name, "startedAt": _time(next(clock))}
        nodes[node_id] = node
        for phase in step.phases:
            node["phase"] = phase
            if phase in ("Succeeded", "Failed", "Error"):
                node["finishedAt"] = _time(next(clock))
                if step.outputs:
                    node["outputs"] = {"parameters": [{"name": k, "value": v}
                                                      for k, v in step.outputs.items()]}
                    if not step.exit_handler:
                        outputs.extend({"name": GLOBALS[k], "value": v}
                                       for k, v in step.outputs.items() if k in GLOBALS)
                if step.message:
                    node["message"] = step.message
            snapshot("Running")
        if node["phase"] != "Succeeded" and not step.exit_handler:
            failed = step
    for node in nodes.values():
        if node["type"] == "Steps":
            node["phase"] = "Failed" if failed and node["id"] == name else "Succeeded"
            node["finishedAt"] = _time(next(clock))
    if failed:
        snapshot("Failed", message=f"child '{name}-x' failed", finishedAt=_time(next(clock)))
    else:
        snapshot("Succeeded", finishedAt=_time(next(clock)))
    return frames


def _time(second: int) -> str:
    return f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}Z"
