"""``csi report verify``: is the report what was signed, and the archive what was analysed?

Checks, each named in the result: the report file is exactly its canonical
bytes; it validates against its schema; its Ed25519 signature verifies (and,
if not, which parts differ from their signed digests); the chain of custody
is consistent (the sha256 before analysis matches the one at capture); the
renderings match the signed manifest; and the archive file, hashed again
now, has the sha256 and size the report records (and, if not, which of its
members changed).

The signer must be trusted (see :mod:`forensics.report.trust`): a report
altered and re-signed with a fresh key fails. The manifest is part of the
evidence: a report without one fails unless only its JSON is asked for
(``json_only``), which the result says.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.report.canonical import canonical_bytes, sha256_hex
from forensics.report.errors import ReportError
from forensics.report.schema import schema_errors
from forensics.report.signing import check_signature
from forensics.report.trust import Trust, default_trust, explicit_trust

HASH_CHUNK = 4 << 20
RENDERED = ("report.html", "report.json", "report.md")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, failed, skipped
    detail: str
    problems: tuple[str, ...] = ()


@dataclass
class Verification:
    subject: str  # the report's ID, or the file
    checks: list[Check] = field(default_factory=list)
    fingerprint: str | None = None
    report_id: str | None = None  # the id the document claims
    report_sha256: str | None = None  # of the report file's bytes

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [p for c in self.checks for p in c.problems]

    def add(self, name: str, problems: list[str], ok_detail: str) -> None:
        status = "failed" if problems else "ok"
        detail = problems[0] if problems else ok_detail
        self.checks.append(Check(name, status, detail, tuple(problems)))

    def skip(self, name: str, why: str) -> None:
        self.checks.append(Check(name, "skipped", why))


def verify_report(report_json: Path, *, archive: str | None = None, check_archive: bool = True,
                  expected_key: str | None = None, trust: Trust | None = None,
                  json_only: bool = False) -> Verification:
    """Verify the report file ``report_json`` and the ``manifest.json`` beside it.

    ``trust`` says which signers are accepted (default: this installation's
    key and its trusted-keys file; ``expected_key``: that fingerprint only).
    """
    if trust is None:
        trust = explicit_trust(fingerprints=[expected_key]) if expected_key else default_trust()
    result = Verification(str(report_json))
    try:
        data = read_regular(report_json)
    except OSError as exc:
        raise ReportError(f"{report_json}: cannot read", why=exc.strerror or str(exc)) from None
    result.report_sha256 = sha256_hex(data)
    document = _parse(data, report_json.name, result)
    if document is None:
        return result
    result.subject = str(document.get("id", report_json))
    result.report_id = document.get("id") if isinstance(document.get("id"), str) else None
    try:
        canonical = canonical_bytes(document)
    except ReportError as exc:
        result.add("canonical form", [f"{report_json.name}: {exc} (the file was altered)"], "")
        return result
    if data != canonical:
        at = _first_difference(data, canonical)
        result.add("canonical form", [
            f"{report_json.name}: byte {at} differs from the canonical (signed) form "
            f"(near {data[max(0, at - 30):at + 30]!r}): the file was edited after signing"], "")
    else:
        result.add("canonical form", [], f"{report_json.name} is exactly its canonical bytes "
                   f"(sha256 {sha256_hex(data)})")
    errors = schema_errors(document)
    result.add("schema", [f"{report_json.name}: schema: {e}" for e in errors],
               f"valid against report.schema.json (version {document.get('schema_version')})")
    _signature(document, result, trust)
    _custody(document, result)
    if json_only:
        result.skip("renderings", "not checked (--json-only): only report.json was verified, "
                    "not the HTML, Markdown or manifest")
    else:
        _renderings(report_json.parent, data, document, result)
    if check_archive:
        _archive(document, archive, result)
    else:
        result.skip("archive", "not checked (--skip-archive)")
    return result


def _parse(data: bytes, label: str, result: Verification) -> dict[str, Any] | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.add("canonical form", [f"{label}: byte {exc.start} is not valid UTF-8 "
                                      "(the file was altered)"], "")
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        byte = len(text[:exc.pos].encode("utf-8"))
        result.add("canonical form", [f"{label}: not valid JSON at byte {byte} ({exc.msg}, "
                                      f"near {data[max(0, byte - 30):byte + 30]!r}): the file "
                                      "was altered"], "")
        return None
    if not isinstance(document, dict):
        result.add("canonical form", [f"{label}: not a JSON object"], "")
        return None
    return document


def _first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _signature(document: dict[str, Any], result: Verification, trust: Trust) -> None:
    check = check_signature(document, "report.json")
    result.fingerprint = check.fingerprint
    problems = list(check.problems)
    untrusted = trust.problem(check.fingerprint) if check.fingerprint else None
    if untrusted:
        problems.insert(0, untrusted)
    origin = trust.origin(check.fingerprint)
    result.add("signature", problems, f"Ed25519 signature by {check.fingerprint}"
               f"{f' ({origin})' if origin else ''} verifies; every part matches its signed "
               "digest")


def _custody(document: dict[str, Any], result: Verification) -> None:
    try:
        archive = document["custody"]["archive"]
        capture = document["custody"]["capture"]
    except (KeyError, TypeError):
        result.add("chain of custody", ["report.json: no custody.archive/custody.capture"], "")
        return
    problems = []
    if capture.get("archive_sha256") and capture["archive_sha256"] != archive.get("sha256"):
        problems.append(f"chain of custody: the archive hashed before analysis "
                        f"({archive.get('sha256')}) is not the one captured "
                        f"({capture['archive_sha256']})")
    if capture.get("archive_size") is not None and capture["archive_size"] != archive.get("size"):
        problems.append(f"chain of custody: the archive analysed had {archive.get('size')} "
                        f"bytes, {capture['archive_size']} at capture")
    recorded = "sha256 at capture and before analysis agree" if capture.get(
        "archive_sha256") else "no sha256 recorded at capture (manual analysis)"
    result.add("chain of custody", problems, recorded)


def _renderings(folder: Path, report_bytes: bytes, document: dict[str, Any],
                result: Verification) -> None:
    path = folder / "manifest.json"
    if not path.is_file():
        result.add("renderings", [f"manifest.json: missing beside {folder / 'report.json'}: the "
                                  "HTML and Markdown cannot be checked (the manifest is part of "
                                  "the evidence; --json-only checks the JSON alone)"], "")
        return
    try:
        manifest = json.loads(read_regular(path))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        result.add("renderings", [f"manifest.json: unreadable ({exc})"], "")
        return
    problems = list(check_signature(manifest, "manifest.json").problems)
    if manifest.get("signature", {}).get("key_fingerprint") != result.fingerprint:
        problems.append("manifest.json: signed by another key than the report")
    if manifest.get("report_id") != document.get("id"):
        problems.append(f"manifest.json: is for report {manifest.get('report_id')}, not "
                        f"{document.get('id')}")
    listed = manifest.get("files")
    files: dict[str, Any] = listed if isinstance(listed, dict) else {}
    if sorted(files) != list(RENDERED):
        problems.append(f"manifest.json: lists {sorted(files)!r}, not {list(RENDERED)!r}")
    for name in RENDERED:
        entry = files[name] if isinstance(files.get(name), dict) else {}
        try:
            size, digest = ((len(report_bytes), sha256_hex(report_bytes)) if name == "report.json"
                            else _hash_file(str(folder / name)))
        except FileNotFoundError:
            problems.append(f"{name}: missing")
            continue
        except OSError as exc:
            problems.append(f"{name}: cannot be read ({exc.strerror or exc})")
            continue
        if digest != entry.get("sha256"):
            problems.append(f"{name}: sha256 {digest} is not the signed "
                            f"{entry.get('sha256')} ({size} bytes, signed "
                            f"{entry.get('size')}): the file was altered")
    result.add("renderings", problems, f"{', '.join(RENDERED)} match the signed manifest")


def _archive(document: dict[str, Any], override: str | None, result: Verification) -> None:
    try:
        recorded = document["custody"]["archive"]
        path = override or recorded["path"]
    except (KeyError, TypeError):
        result.add("archive", ["report.json: no custody.archive.path"], "")
        return
    ref = (document.get("custody", {}).get("capture") or {}).get("registry_ref")
    if override is None and ref and not os.path.exists(path):
        _stored_archive(document, ref, result)  # a capture's copy is in the registry/layout
        return
    try:
        size, digest = _hash_file(path)
    except OSError as exc:
        result.add("archive", [f"archive {path}: cannot be read ({exc.strerror or exc}); give "
                               "its location with --archive, or --skip-archive"], "")
        return
    problems = []
    signed = recorded.get("sha256")
    at_capture = document.get("custody", {}).get("capture", {}).get("archive_sha256")
    if digest != signed:
        problems.append(f"archive {path}: sha256 is now {digest}, the report records {signed} "
                        f"({size} bytes now, {recorded.get('size')} recorded)")
        problems += changed_members(path, recorded.get("members") or [])
    elif at_capture and digest != at_capture:
        problems.append(f"archive {path}: sha256 {digest} is not the one at capture {at_capture}")
    result.add("archive", problems, f"{path}: sha256 {digest} and size {size} as recorded"
               + (" at capture and before analysis" if at_capture else " before analysis"))


def _stored_archive(document: dict[str, Any], ref: str, result: Verification) -> None:
    """Pull the captured archive back from where the capture stored it, and check it."""
    import tempfile

    from forensics.errors import CsiError
    from forensics.storage.api import pull_archive

    recorded = document["custody"]["archive"]
    with tempfile.TemporaryDirectory(prefix="csi-verify-") as tmp:
        try:
            pulled = pull_archive(ref, os.path.join(tmp, "archive.tar"))
        except CsiError as exc:
            result.add("archive", [f"archive {ref}: cannot be pulled ({exc}); give a local "
                                   "copy with --archive, or --skip-archive"], "")
            return
        manifest = (document.get("custody", {}).get("capture") or {}).get("manifest_digest")
        problems = []
        if manifest and pulled.digest != manifest:
            problems.append(f"archive {ref}: the image's manifest is now {pulled.digest}, the "
                            f"report records {manifest}")
        if pulled.sha256 != recorded.get("sha256"):
            problems.append(f"archive {ref}: sha256 is {pulled.sha256}, the report records "
                            f"{recorded.get('sha256')}")
        result.add("archive", problems, f"{ref}: pulled back, sha256 {pulled.sha256} and "
                   f"manifest {pulled.digest} as recorded")


def _open_regular(path: str | Path) -> int:
    """Open a regular file for reading; a FIFO, device or folder (a tampered store) is an
    OSError instead of a read that blocks or never ends."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd


def read_regular(path: Path) -> bytes:
    with open(_open_regular(path), "rb") as f:
        return f.read()


def _hash_file(path: str) -> tuple[int, str]:
    with open(_open_regular(path), "rb", buffering=0) as f:
        digest = hashlib.file_digest(f, "sha256")
        return f.tell(), digest.hexdigest()


def changed_members(path: str, signed: list[dict[str, Any]]) -> list[str]:
    """Which members of the archive differ from their recorded sha256 (best effort)."""
    from forensics.archive.source import ArchiveSource
    from forensics.errors import CsiError

    before = {m["name"]: m for m in signed if isinstance(m, dict) and "name" in m}
    try:
        with ArchiveSource(path, hash_cache=False) as source:
            now = {}
            for name, member in source.members.items():
                if member.kind != "file":
                    continue
                digest = hashlib.sha256()
                for offset in range(0, member.size, HASH_CHUNK):
                    digest.update(source.pread(member, offset, HASH_CHUNK))
                now[name] = (member.size, digest.hexdigest())
            warnings = list(source.warnings)
    except (CsiError, OSError) as exc:
        return [f"archive {path}: can no longer be read as a checkpoint archive ({exc})"]
    out = []
    for name in sorted(set(before) | set(now)):
        if name not in now:
            out.append(f"archive member {name}: missing (it was recorded)")
        elif name not in before:
            out.append(f"archive member {name}: added (it was not recorded)")
        elif now[name][1] != before[name].get("sha256"):
            out.append(f"archive member {name}: content changed (sha256 {now[name][1]}, "
                       f"recorded {before[name].get('sha256')}; {now[name][0]} bytes, "
                       f"recorded {before[name].get('size')})")
    out += [f"archive: {w}" for w in warnings]
    if not out:
        out.append("archive: every member's content is as recorded: the change lies in tar "
                   "headers, padding or compression")
    return out

