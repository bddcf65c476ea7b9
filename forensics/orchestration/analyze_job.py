"""The analysis half of a capture, as the memory-limited worker runs it.

:func:`analyze_pulled` opens the copy pulled back from storage, checks that it
is the archive captured, analyses it and stores the signed report. It runs in
``python -m forensics.analysis.worker`` (see :mod:`forensics.analysis.worker`):
its arguments and its answer are plain JSON, so that a hostile checkpoint's
analysis happens in a process the capture can lose without losing itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from forensics.capture.errors import CaptureError
from forensics.orchestration.request import CaptureRequest, CaptureResult


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def analyze_pulled(copy: str, pulled_sha256: str, request: dict[str, Any],
                   result: dict[str, Any], node: str, captured_by: str, started: str
                   ) -> dict[str, Any]:
    """Analyse ``copy`` and store its report; the report id, verdict and timeline events."""
    from forensics.analysis.base import Options
    from forensics.analysis.runner import analyze
    from forensics.archive.checkpoint import Checkpoint
    from forensics.report.provenance import Provenance, Trigger
    from forensics.report.publish import report_analysis

    req = CaptureRequest.from_dict(request)
    res = CaptureResult(**result)
    timeline: dict[str, str] = {}
    with Checkpoint(copy, hash_cache=False) as ckpt:
        if ckpt.archive.sha256 != res.archive_sha256 or pulled_sha256 != res.archive_sha256:
            raise CaptureError(
                "the stored checkpoint does not match what was captured",
                why=f"captured sha256 {res.archive_sha256}, pulled {ckpt.archive.sha256}",
                hint="the evidence may have been tampered with in the registry")
        alert = req.trigger.alert
        analysis = analyze(ckpt, Options(alert=alert))
        timeline["analyzed"] = _iso(datetime.now(UTC))
        trigger = (Trigger.from_alert(alert, policy=req.trigger.policy)
                   if req.trigger.kind == "alert" and alert
                   else Trigger.by_responder(req.trigger.responder or "unknown",
                                             req.trigger.reason, alert))
        provenance = Provenance(
            trigger=trigger, node=node or None,
            node_archive_path=res.archive_path or None,
            archive_sha256_at_capture=res.archive_sha256,
            archive_size_at_capture=res.archive_size, registry_ref=res.image_ref,
            manifest_digest=res.manifest_digest,
            checkpoint_requested=_parse(res.timeline.get("checkpoint requested")),
            checkpoint_written=_parse(res.timeline.get("checkpoint written")),
            pushed=_parse(res.timeline.get("pushed")), captured_by=captured_by,
        )
        stored = report_analysis(analysis, provenance, analysis_started=_parse(started))
        verdict = analysis.verdict
        timeline["reported"] = _iso(datetime.now(UTC))
    return {"report_id": stored.id, "verdict": str(verdict) if verdict is not None else "none",
            "timeline": timeline}
