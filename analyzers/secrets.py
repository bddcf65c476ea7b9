"""secrets: credentials in process environments and memory, reported redacted.

What counts as a secret, and how it is shown, is :mod:`forensics.analysis.redact`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.redact import SECRET_NAME, VALUE_TYPES, Redactor, classify

__all__ = ["SECRET_NAME", "VALUE_TYPES", "SecretsAnalyzer", "classify"]
MEMORY_RULES = {"aws_access_key": "aws-access-key-id", "github_token": "github-token",
                "slack_token": "slack-token", "stripe_key": "stripe-live-key",
                "private_key": "private-key"}
MAX_LOCATIONS = 20


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
        """Never the value (unless --reveal), nor its length: a keyed fingerprint."""
        return Redactor(reveal=ctx.options.reveal).shown(value)

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
