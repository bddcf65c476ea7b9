"""The one way csi runs external tools (buildah, skopeo, podman).

Commands are argv lists (never a shell), every call has a timeout, stderr is
kept for the error message, and secrets are redacted from anything that is
shown or raised: values given in ``secrets`` and the argument of options
like ``--creds``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from forensics.errors import CsiError
from forensics.status import ExitStatus

DEFAULT_TIMEOUT = 600.0
_SECRET_OPTIONS = ("--creds", "--src-creds", "--dest-creds", "--password", "-p")
_STDERR_TAIL = 600


class ToolError(CsiError):
    """An external tool failed, timed out, or is missing; stderr (redacted) is kept."""

    exit_code = ExitStatus.EXTERNAL

    def __init__(self, what: str, *, why: str = "", hint: str = "", permanent: bool = True,
                 stderr: str = "") -> None:
        super().__init__(what, why=why, hint=hint)
        self.permanent = permanent
        self.stderr = stderr


@dataclass(frozen=True)
class Completed:
    """The result of a successful run."""

    argv: tuple[str, ...]
    stdout: str
    stderr: str


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def redacted_argv(argv: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """The argv as it may be shown: option values that carry credentials hidden."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append("***")
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in _SECRET_OPTIONS:
            if eq:
                shown.append(f"{name}=***")
            else:
                shown.append(arg)
                hide_next = True
            continue
        shown.append(arg)
    return [redact(a, secrets) for a in shown]


def _tail(text: str) -> str:
    text = text.strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = " | ".join(lines[-3:])
    return last if len(last) <= _STDERR_TAIL else "…" + last[-_STDERR_TAIL:]


def run(
    argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, secrets: Iterable[str] = (),
    env: Mapping[str, str] | None = None, input_text: str | None = None,
    transient: Sequence[str] = (), cwd: str | None = None,
) -> Completed:
    """Run ``argv``; return its output or raise :class:`ToolError`.

    ``env`` entries are added to the current environment. ``transient`` lists
    stderr fragments (e.g. ``connection refused``) that make the failure
    temporary (worth a retry) rather than permanent.
    """
    secrets = [s for s in secrets if s]
    tool = os.path.basename(argv[0])
    if shutil.which(argv[0]) is None:
        raise ToolError(f"{tool} is not installed", hint=f"install {tool} (see "
                        "deploy/dev/install-system.sh) or use the native backend")
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    shown = " ".join(redacted_argv(argv, secrets))
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=full_env,
            input=input_text, cwd=cwd, check=False,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"{shown}: timed out after {timeout:g} s", permanent=False) from None
    except OSError as exc:
        raise ToolError(f"{shown}: cannot run", why=exc.strerror or str(exc)) from None
    if done.returncode != 0:
        stderr = redact(done.stderr, secrets)
        lowered = stderr.lower()
        temporary = any(fragment in lowered for fragment in transient)
        raise ToolError(f"{shown}: exit status {done.returncode}", why=_tail(stderr),
                        permanent=not temporary, stderr=stderr)
    return Completed(tuple(argv), done.stdout, redact(done.stderr, secrets))
