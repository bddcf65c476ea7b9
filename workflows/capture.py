"""The ``csi-capture`` Argo WorkflowTemplate, written with hera.

    checkpoint ─▶ collect-push ─▶ analyze          (steps of ``main``)
    cleanup                                        (the exit handler: always runs)

Every template's container runs ``csi step <name> …`` (see
:mod:`forensics.cli.step_cmds`): outputs are files under ``/tmp/csi/out``
read by ``valueFrom.path``; exit status 75 means "temporary", and only that
is retried, with exponential backoff. Each step has its own service account
(RBAC in ``deploy/rbac.yaml``) and a restricted security context: only
collect-push reads the node's checkpoint directory (read-only hostPath),
only cleanup writes it, and nothing is privileged unless the buildah
backend is rendered (then collect-push alone, since buildah needs it).

The exit handler sees the steps' outputs through global output parameters
(``globalName``); a step that failed before writing one leaves it at its
``default`` ``""``, which tells cleanup to keep the archive.

``hera`` is imported inside :func:`build` so that ``csi --help`` does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forensics import __version__
from forensics.paths import KUBELET_CHECKPOINT_DIR
from forensics.status import ExitStatus

if TYPE_CHECKING:
    from hera.workflows import WorkflowTemplate

NAME = "csi-capture"
NAMESPACE = "csi"
IMAGE = f"ghcr.io/csi-forensics/csi:{__version__}"
PARAMETERS = ("namespace", "pod", "container", "node", "reason", "alert")
OPTIONAL = ("node", "reason", "alert")
CHECKPOINT_DIR = KUBELET_CHECKPOINT_DIR
SCRATCH = "/tmp/csi"
OUT = f"{SCRATCH}/out"
REPORT = f"{SCRATCH}/report"
CSI_HOME = "/var/lib/csi"
TEMPFAIL = int(ExitStatus.TEMPFAIL)
SERVICE_ACCOUNTS = {"checkpoint": "csi-checkpoint", "collect-push": "csi-collect",
                    "analyze": "csi-analyze", "cleanup": "csi-cleanup"}
DEADLINES = {"checkpoint": 600, "collect-push": 1800, "analyze": 1800, "cleanup": 600}
GLOBALS = {"archive-path": "csi-archive-path", "node": "csi-node",
           "image-ref": "csi-image-ref", "sha256": "csi-sha256"}


def wf(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


def inp(name: str) -> str:
    return f"{{{{inputs.parameters.{name}}}}}"


def out(step: str, name: str) -> str:
    return f"{{{{steps.{step}.outputs.parameters.{name}}}}}"


def glob(name: str) -> str:
    return f"{{{{workflow.outputs.parameters.{GLOBALS[name]}}}}}"


def build(backend: str = "native", image: str = IMAGE,
          namespace: str = NAMESPACE) -> WorkflowTemplate:
    """The WorkflowTemplate; ``backend`` ``buildah`` makes collect-push privileged."""
    from hera.workflows import Container, Parameter, Step, Steps, WorkflowTemplate
    from hera.workflows import models as m

    if backend not in ("native", "buildah"):
        raise ValueError(f"unknown backend {backend!r}")
    target = ["--namespace", wf("namespace"), "--pod", wf("pod"), "--container",
              wf("container"), "--reason", wf("reason"), "--alert", wf("alert"),
              "--backend", backend, "--output-dir", OUT]
    scratch = m.Volume(name="scratch", empty_dir=m.EmptyDirVolumeSource())
    home = m.Volume(name="csi-home", empty_dir=m.EmptyDirVolumeSource())
    node_dir = m.Volume(name="checkpoints", host_path=m.HostPathVolumeSource(
        path=CHECKPOINT_DIR, type="Directory"))
    reg_auth = m.Volume(name="registry-auth", secret=m.SecretVolumeSource(
        secret_name="csi-registry-auth", optional=True))
    mounts = [m.VolumeMount(name="scratch", mount_path=SCRATCH),
              m.VolumeMount(name="csi-home", mount_path=CSI_HOME)]
    auth_mount = m.VolumeMount(name="registry-auth", mount_path="/etc/csi/registry",
                               read_only=True)
    registry_env = [
        m.EnvVar(name="CSI_HOME", value=CSI_HOME),
        _config_env("CSI_REGISTRY", "registry"),
        _config_env("CSI_REGISTRY_PLAIN_HTTP", "registry-plain-http"),
        m.EnvVar(name="CSI_REGISTRY_AUTH_FILE", value="/etc/csi/registry/auth.json"),
    ]

    def container(name: str, args: list[str], outputs: list[str], *,
                  inputs: tuple[str, ...] = (), volumes: list[m.Volume] | None = None,
                  extra_mounts: list[m.VolumeMount] | None = None,
                  env: list[m.EnvVar] | None = None, on_node: bool = False,
                  host_root: bool = False, privileged: bool = False,
                  artifacts: list[m.Artifact] | None = None) -> Container:
        params: list[Any] = [
            Parameter(name=o, value_from=m.ValueFrom(path=f"{OUT}/{o}", default=""),
                      global_name=GLOBALS.get(o) if name != "cleanup" else None)
            for o in outputs]
        return Container(
            name=name, image=image, command=["csi", "step", name], args=args,
            inputs=[Parameter(name=i) for i in inputs] or None,
            outputs=params + list(artifacts or []),
            service_account_name=SERVICE_ACCOUNTS[name],
            automount_service_account_token=True,
            active_deadline_seconds=str(DEADLINES[name]),
            retry_strategy=_retry(),
            node_selector={"kubernetes.io/hostname": inp("node")} if on_node else None,
            volumes=[scratch, home, *(volumes or [])],
            volume_mounts=mounts + list(extra_mounts or []),
            env=list(env or []) or None,
            security_context=_security(host_root=host_root, privileged=privileged),
            resources=m.ResourceRequirements(
                requests={"cpu": m.Quantity("100m"), "memory": m.Quantity("256Mi")},
                limits={"memory": m.Quantity("2Gi")}),
        )

    with WorkflowTemplate(
        name=NAME, namespace=namespace, entrypoint="main", on_exit="exit-handler",
        labels={"app.kubernetes.io/name": "csi", "app.kubernetes.io/component": "capture"},
        annotations={"workflows.argoproj.io/description": "csi: checkpoint a container "
                     "(kubelet Checkpoint API), push it as an OCI image, analyze it, "
                     "write a signed report; generated by `csi workflow render`."},
        arguments=[Parameter(name=p, value="") if p in OPTIONAL else Parameter(name=p)
                   for p in PARAMETERS],
        active_deadline_seconds=3600,
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        ttl_strategy=m.TTLStrategy(seconds_after_success=86400,
                                   seconds_after_failure=7 * 86400),
        security_context=m.PodSecurityContext(seccomp_profile=m.SeccompProfile(
            type="RuntimeDefault")),
    ) as template:
        checkpoint = container(
            "checkpoint", [*target, "--node", wf("node"), "--checkpoint-dir",
                           CHECKPOINT_DIR],
            ["archive-path", "node", "checkpoint-requested", "checkpoint-written"])
        collect = container(
            "collect-push", [*target, "--node", inp("node"), "--archive", inp("archive"),
                             "--checkpoint-dir", CHECKPOINT_DIR],
            ["image-ref", "manifest-digest", "sha256", "size", "pushed"],
            inputs=("node", "archive"), on_node=True, host_root=True,
            privileged=backend == "buildah", env=registry_env,
            volumes=[node_dir, reg_auth],
            extra_mounts=[m.VolumeMount(name="checkpoints", mount_path=CHECKPOINT_DIR,
                                        read_only=True), auth_mount])
        analyze_inputs = ("node", "archive", "image-ref", "manifest-digest", "sha256", "size",
                          "checkpoint-requested", "checkpoint-written", "pushed")
        analyze = container(
            "analyze", [*target, "--node", inp("node"),
                        *[a for i in analyze_inputs[1:] for a in (f"--{i}", inp(i))],
                        "--workflow", "{{workflow.name}}", "--report-dir", REPORT,
                        "--work-dir", f"{SCRATCH}/work"],
            ["report-id", "verdict"], inputs=analyze_inputs,
            env=[*registry_env, m.EnvVar(name="CSI_SIGNING_KEY_PEM", value_from=m.EnvVarSource(
                secret_key_ref=m.SecretKeySelector(name="csi-signing-key",
                                                   key="signing-key.pem"))),
                 # one fingerprint key for every pod, so a secret matches across reports
                 m.EnvVar(name="CSI_FINGERPRINT_KEY", value_from=m.EnvVarSource(
                     secret_key_ref=m.SecretKeySelector(name="csi-signing-key",
                                                        key="fingerprint.key",
                                                        optional=True)))],
            volumes=[reg_auth], extra_mounts=[auth_mount],
            artifacts=[m.Artifact(name=f"report-{ext}", path=f"{REPORT}/report.{ext}",
                                  archive=m.ArchiveStrategy(none=m.NoneStrategy()))
                       for ext in ("json", "html", "md")])
        cleanup = container(
            "cleanup", ["--archive", inp("archive"), "--image-ref", inp("image-ref"),
                        "--sha256", inp("sha256"), "--backend", backend,
                        "--checkpoint-dir", CHECKPOINT_DIR, "--output-dir", OUT],
            ["deleted", "why"], inputs=("node", "archive", "image-ref", "sha256"),
            on_node=True, host_root=True, env=registry_env,
            volumes=[node_dir, reg_auth],
            extra_mounts=[m.VolumeMount(name="checkpoints", mount_path=CHECKPOINT_DIR),
                          auth_mount])
        with Steps(name="main"):
            Step(name="checkpoint", template=checkpoint)
            Step(name="collect-push", template=collect, arguments={
                "node": out("checkpoint", "node"), "archive": out("checkpoint", "archive-path")})
            Step(name="analyze", template=analyze, arguments={
                "node": out("checkpoint", "node"), "archive": out("checkpoint", "archive-path"),
                **{k: out("collect-push", k) for k in ("image-ref", "manifest-digest",
                                                       "sha256", "size", "pushed")},
                **{k: out("checkpoint", k) for k in ("checkpoint-requested",
                                                     "checkpoint-written")}})
        with Steps(name="exit-handler"):
            Step(name="cleanup", template=cleanup, arguments={
                "node": glob("node"), "archive": glob("archive-path"),
                "image-ref": glob("image-ref"), "sha256": glob("sha256")})
    return template


def _config_env(name: str, key: str) -> Any:
    from hera.workflows import models as m

    return m.EnvVar(name=name, value_from=m.EnvVarSource(config_map_key_ref=m.ConfigMapKeySelector(
        name="csi-config", key=key, optional=True)))


def _retry() -> Any:
    from hera.workflows import models as m

    return m.RetryStrategy(
        limit=m.IntOrString("4"), retry_policy="Always",
        expression=f"asInt(lastRetry.exitCode) == {TEMPFAIL}",
        backoff=m.Backoff(duration="10s", factor=m.IntOrString("2"), max_duration="10m"))


def _security(*, host_root: bool, privileged: bool) -> Any:
    """Non-root and read-only everywhere; root (no capabilities) where the node's root-owned
    checkpoint directory is read or written; privileged only for buildah."""
    from hera.workflows import models as m

    if privileged:
        return m.SecurityContext(privileged=True, run_as_user=0)
    return m.SecurityContext(
        run_as_non_root=not host_root, run_as_user=0 if host_root else 65532,
        allow_privilege_escalation=False, read_only_root_filesystem=True,
        capabilities=m.Capabilities(drop=["ALL"]))


def render(backend: str = "native", image: str = IMAGE, namespace: str = NAMESPACE) -> str:
    """The WorkflowTemplate as YAML (what ``deploy/workflows/`` holds)."""
    import yaml

    data = build(backend, image, namespace).to_dict()
    header = "# Generated by `csi workflow render` from workflows/capture.py: do not edit.\n"
    return header + yaml.safe_dump(data, sort_keys=False, width=100)
