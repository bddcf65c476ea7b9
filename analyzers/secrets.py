"""secrets: credentials in process environments and memory, reported redacted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.helpers import redact, sha256_text

SECRET_NAME = re.compile(
    r"(PASSW(OR)?D|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY|AUTH|"
    r"^STRIPE_|_DSN$|CONN(ECTION)?_?STRING)", re.IGNORECASE)
VALUE_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws-access-key-id", re.compile(r"^(AKIA|ASIA)[0-9A-Z]{16}$")),
    ("github-token", re.compile(r"^gh[pousr]_[A-Za-z0-9]{36}$")),
    ("slack-token", re.compile(r"^xox[abprs]-")),
    ("stripe-live-key", re.compile(r"^[sr]k_live_")),
    ("private-key", re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----")),
)
MEMORY_RULES = {"aws_access_key": "aws-access-key-id", "github_token": "github-token",
                "slack_token": "slack-token", "stripe_key": "stripe-live-key",
                "private_key": "private-key"}
MAX_LOCATIONS = 20


def classify(name: str, value: str) -> str | None:
    for kind, pattern in VALUE_TYPES:
        if pattern.search(value):
            return kind
    if SECRET_NAME.search(name) and value:
        return "named-secret"
    return None


class SecretsAnalyzer:
    name = "secrets"
    version = "1.0"
    description = ("credentials in environments and memory (AWS, GitHub, Slack, Stripe, keys, "
                   "*PASSWORD*…), redacted")

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.checkpoint.processes else "no process could be read from the archive"

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        yield from self._environment(ctx)
        yield from self._memory(ctx)

    def _show(self, ctx: Context, value: str) -> dict[str, Any]:
        shown = {"redacted": redact(value), "sha256": sha256_text(value)}
        if ctx.options.reveal:
            shown["value"] = value
        return shown

    def _environment(self, ctx: Context) -> Iterator[Finding | Record]:
        found: dict[tuple[str, str], list[int]] = {}
        for p in ctx.checkpoint.processes:
            for item in p.environ or ():
                name, _, value = item.partition("=")
                if classify(name, value):
                    found.setdefault((name, value), []).append(p.pid)
        for (name, value), pids in sorted(found.items()):
            kind = classify(name, value) or "named-secret"
            shown = self._show(ctx, value)
            yield Record("secret", {"source": "environment", "name": name, "type": kind,
                                    "pids": pids, **shown})
            yield Finding(
                "secrets.environment", Severity.MEDIUM,
                f"{name} ({kind}) is in the environment of pid {', '.join(map(str, pids))}: "
                "rotate it, the attacker could read it",
                pid=pids[0], evidence={"name": name, "type": kind, "pids": pids, **shown},
                mitre=("T1552.001",),
            )

    def _memory(self, ctx: Context) -> Iterator[Finding | Record]:
        found: dict[tuple[str, str], list[tuple[int | None, int | None, str | None]]] = {}
        for hit in ctx.memory_scan.in_namespace("extract"):
            kind = MEMORY_RULES.get(hit.rule)
            if kind is None:
                continue
            value = hit.data.decode("latin-1")
            found.setdefault((kind, value), []).append((hit.pid, hit.address, hit.path))
        for (kind, value), where in sorted(found.items()):
            pids = sorted({pid for pid, _, _ in where if pid is not None})
            paths = sorted({path for _, _, path in where if path is not None})
            locations = [
                {"pid": pid, "address": f"0x{addr:x}"} if pid is not None else {"path": path}
                for pid, addr, path in where[:MAX_LOCATIONS]
            ]
            shown = self._show(ctx, value)
            yield Record("secret", {"source": "memory" if pids else "file", "type": kind,
                                    "pids": pids, "paths": paths, "count": len(where), **shown})
            places = ", ".join([f"pid {p}" for p in pids] + paths)
            yield Finding(
                "secrets.memory", Severity.MEDIUM,
                f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} appears {len(where)} times "
                f"in {places}",
                pid=pids[0] if pids else None, path=paths[0] if paths else None,
                evidence={"type": kind, "count": len(where), "locations": locations, **shown},
                mitre=("T1552",),
            )
