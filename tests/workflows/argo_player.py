"""Play a rendered WorkflowTemplate as Argo's controller would, without Argo (a test double).

What it does as Argo does: runs the entrypoint's steps in order, each step's
template's container ``command`` + ``args`` exactly as rendered, after
substituting ``{{workflow.parameters.x}}``, ``{{inputs.parameters.x}}``,
``{{steps.<name>.outputs.parameters.x}}``, ``{{workflow.outputs.parameters.x}}``
(from ``globalName``) and ``{{workflow.name}}`` (an unresolvable expression
fails the step, as in Argo); reads output parameters from ``valueFrom.path``
(``default`` when the file is missing); retries per ``retryStrategy`` when
its expression ``asInt(lastRetry.exitCode) == N`` holds (no backoff sleep);
stops at the first failed step and then runs the ``onExit`` template.

What stands in for the cluster: each container is a subprocess on this
machine; its volume mounts are directory mappings (``mounts``: container
path -> host path, applied to every argument and output path, as a mount
would); env vars come from the literal ``value`` s and from the given
ConfigMap/Secret dicts; ``extra_env`` adds what a pod would have (the
in-cluster service account is a kubeconfig here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPRESSION = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
RETRY_ON = re.compile(r"asInt\(lastRetry\.exitCode\) == (\d+)")
CSI = str(Path(sys.executable).with_name("csi"))


@dataclass
class StepRun:
    name: str
    template: str
    argv: list[str]
    exit_code: int
    attempts: int
    outputs: dict[str, str]
    stderr: str


@dataclass
class Play:
    phase: str = "Succeeded"
    runs: list[StepRun] = field(default_factory=list)
    globals: dict[str, str] = field(default_factory=dict)

    def step(self, name: str) -> StepRun:
        return next(r for r in self.runs if r.name == name)


class Unresolved(Exception):
    pass


def substitute(text: str, scope: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in scope:
            raise Unresolved(f"failed to resolve {{{{{key}}}}}")
        return scope[key]

    return EXPRESSION.sub(one, text)


class ArgoPlayer:
    def __init__(self, document: dict[str, Any], work: Path, *, mounts: dict[str, Path],
                 config_maps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]],
                 extra_env: dict[str, str], name: str = "csi-capture-play") -> None:
        self.spec = document["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.work = work
        self.mounts = mounts
        self.config_maps = config_maps
        self.secrets = secrets
        self.extra_env = extra_env
        self.name = name
        self.count = 0

    def play(self, parameters: dict[str, str]) -> Play:
        scope = {"workflow.name": self.name}
        for p in self.spec["arguments"]["parameters"]:
            value = parameters.get(p["name"], p.get("value"))
            if value is None:
                raise ValueError(f"parameter {p['name']} is required")
            scope[f"workflow.parameters.{p['name']}"] = value
        result = Play()
        self._steps(self.templates[self.spec["entrypoint"]], scope, result)
        status = result.phase
        if self.spec.get("onExit"):
            scope["workflow.status"] = status
            self._steps(self.templates[self.spec["onExit"]], scope, result)
            result.phase = status if result.phase == status else "Failed"
        return result

    def _steps(self, template: dict[str, Any], scope: dict[str, str], result: Play) -> None:
        for group in template["steps"]:
            for step in group:
                local = dict(scope)
                for name, value in result.globals.items():
                    local[f"workflow.outputs.parameters.{name}"] = value
                for run in result.runs:
                    for key, value in run.outputs.items():
                        local[f"steps.{run.name}.outputs.parameters.{key}"] = value
                run = self._run(step, local, result)
                result.runs.append(run)
                if run.exit_code != 0:
                    result.phase = "Failed"
                    return

    def _run(self, step: dict[str, Any], scope: dict[str, str], result: Play) -> StepRun:
        template = self.templates[step["template"]]
        inputs = dict(scope)
        try:
            for arg in step.get("arguments", {}).get("parameters", []):
                inputs[f"inputs.parameters.{arg['name']}"] = substitute(arg["value"], scope)
            for p in template.get("inputs", {}).get("parameters", []):
                if f"inputs.parameters.{p['name']}" not in inputs:
                    raise Unresolved(f"input {p['name']} not supplied")
            container = template["container"]
            argv = [substitute(a, inputs) for a in container["command"] + container["args"]]
        except Unresolved as exc:
            return StepRun(step["name"], template["name"], [], -1, 0, {}, str(exc))
        self.count += 1
        pod = self.work / f"pod-{self.count}-{step['name']}"
        mounts = self._mounts(template, pod)
        argv = [self._map(a, mounts) for a in argv]
        argv[0] = CSI if argv[0] == "csi" else argv[0]
        env = self._env(container, mounts)
        retry = template.get("retryStrategy", {})
        limit = int(retry.get("limit", 0))
        retry_on = RETRY_ON.fullmatch(retry.get("expression", ""))
        attempts = 0
        while True:
            attempts += 1
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                                  timeout=900)
            retryable = retry_on is not None and done.returncode == int(retry_on.group(1))
            if done.returncode == 0 or not retryable or attempts > limit:
                break
        outputs: dict[str, str] = {}
        for p in template.get("outputs", {}).get("parameters", []):
            path = Path(self._map(p["valueFrom"]["path"], mounts))
            if path.is_file():
                outputs[p["name"]] = path.read_text()
            elif "default" in p["valueFrom"]:
                outputs[p["name"]] = p["valueFrom"]["default"]
            else:
                continue
            if p.get("globalName"):
                result.globals[p["globalName"]] = outputs[p["name"]]
        return StepRun(step["name"], template["name"], argv, done.returncode, attempts, outputs,
                       done.stderr)

    def _mounts(self, template: dict[str, Any], pod: Path) -> dict[str, Path]:
        """emptyDirs are fresh per pod; other volumes come from ``self.mounts``."""
        volumes = {v["name"]: v for v in template.get("volumes", [])}
        mapped: dict[str, Path] = {}
        for mount in template["container"].get("volumeMounts", []):
            path = mount["mountPath"]
            if "emptyDir" in volumes[mount["name"]]:
                mapped[path] = pod / mount["name"]
                mapped[path].mkdir(parents=True, exist_ok=True)
            else:
                mapped[path] = self.mounts[path]
        for path, host in self.mounts.items():  # paths the step names without a mount
            mapped.setdefault(path, host)
        return mapped

    @staticmethod
    def _map(text: str, mounts: dict[str, Path]) -> str:
        for path in sorted(mounts, key=len, reverse=True):
            if text == path or text.startswith(path + "/"):
                return str(mounts[path]) + text[len(path):]
        return text

    def _env(self, container: dict[str, Any], mounts: dict[str, Path]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSI_")}
        env.update(self.extra_env)
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = self._map(var["value"], mounts)
                continue
            source = var["valueFrom"]
            ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
            store = self.config_maps if "configMapKeyRef" in source else self.secrets
            value = store.get(ref["name"], {}).get(ref["key"])
            if value is not None:
                env[var["name"]] = value
            elif not ref.get("optional"):
                raise KeyError(f"{ref['name']}/{ref['key']} is missing: the pod would not start")
        return env
