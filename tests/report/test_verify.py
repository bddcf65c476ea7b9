"""`verify` passes on every fixture's report, and names what changed when one byte changes."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from forensics.report.publish import StoredReport
from forensics.report.signing import SigningKey
from forensics.report.store import ReportStore
from forensics.report.verify import Verification, verify_report
from tests.conftest import ARCHIVES, CRIU41, PAYMENTS
from tests.report.conftest import Built, store_copy


def flip(path: Path, offset: int) -> tuple[int, int]:
    """Change the byte at ``offset`` (to another printable one); returns (old, new)."""
    data = bytearray(path.read_bytes())
    old = data[offset]
    data[offset] = old ^ 0x01 if chr(old ^ 0x01).isalnum() else (ord("x") if old != ord("x")
                                                                 else ord("y"))
    path.write_bytes(bytes(data))
    return old, data[offset]


def statuses(result: Verification) -> dict[str, str]:
    return {c.name: c.status for c in result.checks}


@pytest.fixture
def stored(built: dict[str, Built], store: ReportStore, key: SigningKey,
           tmp_path: Path, request: pytest.FixtureRequest) -> tuple[StoredReport, Path, Built]:
    archive = getattr(request, "param", PAYMENTS)
    report, copy = store_copy(built[archive], store, key, tmp_path)
    return report, copy, built[archive]


@pytest.mark.parametrize("stored", ARCHIVES, indirect=True)
def test_each_fixture_verifies_then_fails_on_one_changed_byte(
        stored: tuple[StoredReport, Path, Built]) -> None:
    report, archive, b = stored
    json_path = report.file("report.json")
    result = verify_report(json_path)
    assert result.ok, result.problems
    assert statuses(result) == {"canonical form": "ok", "schema": "ok", "signature": "ok",
                                "chain of custody": "ok", "renderings": "ok", "archive": "ok"}
    assert b.truth_sha256 in next(c.detail for c in result.checks if c.name == "archive")

    # one byte of the report: the first finding's summary
    data = json_path.read_bytes()
    flip(json_path, data.index(b'"summary":"', data.index(b'"findings":[')) + 12)
    result = verify_report(json_path)
    assert not result.ok
    assert "report.json: /findings/0 (" in result.problems[0]
    assert result.problems[0].endswith("differs from what was signed")
    json_path.write_bytes(data)
    assert verify_report(json_path).ok

    # one byte of the archive
    if archive.name == CRIU41:  # zstd: any byte may be anywhere in the compressed stream
        offset = archive.stat().st_size // 2
    else:
        with tarfile.open(archive) as tar:
            offset = tar.getmember("checkpoint/pages-1.img").offset_data + 100
    flip(archive, offset)
    result = verify_report(json_path)
    assert statuses(result)["archive"] == "failed"
    assert [c.name for c in result.checks if c.status == "failed"] == ["archive"]
    assert result.problems[0].startswith(f"archive {archive}: sha256 is now ")
    assert result.problems[0].endswith(f"the report records {b.truth_sha256} "
                                       f"({archive.stat().st_size} bytes now, "
                                       f"{archive.stat().st_size} recorded)")
    if archive.name != CRIU41:
        assert result.problems[1].startswith(
            "archive member checkpoint/pages-1.img: content changed (sha256 ")
        assert len(result.problems) == 2


def test_a_changed_custody_hash_is_named(stored: tuple[StoredReport, Path, Built]) -> None:
    report, _, b = stored
    json_path = report.file("report.json")
    data = json_path.read_bytes()
    at = data.index(f'"sha256":"{b.truth_sha256}"'.encode()) + 20
    flip(json_path, at)
    result = verify_report(json_path)
    assert result.problems[0] == ("report.json: /custody/archive/sha256 differs from what was "
                                  "signed")
    # and the archive no longer matches what the (altered) report claims
    assert any(p.startswith("archive ") for p in result.problems)


def test_broken_json_and_non_canonical_bytes(stored: tuple[StoredReport, Path, Built]) -> None:
    report, _, _ = stored
    json_path = report.file("report.json")
    data = json_path.read_bytes()
    at = data.index(b'"exe_deleted":false') + 14
    json_path.write_bytes(data[:at] + b"F" + data[at + 1:])
    result = verify_report(json_path)
    assert result.problems == [
        f"report.json: not valid JSON at byte {at} (Expecting value, near "
        f"{data[at - 30:at] + b'F' + data[at + 1:at + 30]!r}): the file was altered"]
    assert [c.name for c in result.checks] == ["canonical form"]
    json_path.write_bytes(data[:-1] + b" }")  # same content, one byte more, not canonical
    result = verify_report(json_path)
    assert result.problems[0].startswith(f"report.json: byte {len(data) - 1} differs from the "
                                         "canonical (signed) form")
    assert statuses(result)["signature"] == "ok"  # the content itself is intact


def test_a_forged_signature_value(stored: tuple[StoredReport, Path, Built]) -> None:
    report, _, _ = stored
    json_path = report.file("report.json")
    data = json_path.read_bytes()
    flip(json_path, data.index(b'"value":"', data.index(b'"signature":{')) + 20)
    result = verify_report(json_path)
    assert statuses(result)["signature"] == "failed"
    assert "every part matches its signed digest: the signature block was altered" in \
        result.problems[0]


def test_a_changed_rendering(stored: tuple[StoredReport, Path, Built]) -> None:
    report, _, _ = stored
    html = report.file("report.html")
    flip(html, html.read_bytes().index(b"sh -i"))
    result = verify_report(report.file("report.json"))
    assert [c.name for c in result.checks if c.status == "failed"] == ["renderings"]
    assert result.problems[0].startswith("report.html: sha256 ")
    assert result.problems[0].endswith("the file was altered")


def test_archive_moved_missing_or_skipped(stored: tuple[StoredReport, Path, Built],
                                          tmp_path: Path) -> None:
    report, archive, _ = stored
    json_path = report.file("report.json")
    moved = tmp_path / "elsewhere.tar"
    archive.rename(moved)
    result = verify_report(json_path)
    assert result.problems == [f"archive {archive}: cannot be read (No such file or directory); "
                               "give its location with --archive, or --skip-archive"]
    assert verify_report(json_path, archive=str(moved)).ok
    skipped = verify_report(json_path, check_archive=False)
    assert skipped.ok and statuses(skipped)["archive"] == "skipped"


def test_expected_key_fingerprint(stored: tuple[StoredReport, Path, Built],
                                  key: SigningKey) -> None:
    report, _, _ = stored
    path = report.file("report.json")
    assert verify_report(path, check_archive=False, expected_key=key.fingerprint).ok
    result = verify_report(path, check_archive=False, expected_key="sha256:" + "0" * 64)
    assert result.problems == [f"report.json: signed by {key.fingerprint}, not by the expected "
                               f"key sha256:{'0' * 64}"]


def test_a_report_copied_anywhere_verifies_alone(stored: tuple[StoredReport, Path, Built],
                                                 tmp_path: Path) -> None:
    report, _, _ = stored
    lone = tmp_path / "copy.json"
    lone.write_bytes(report.file("report.json").read_bytes())
    result = verify_report(lone, json_only=True)
    assert result.ok
    assert statuses(result)["renderings"] == "skipped"
    assert result.checks[-2].detail == ("not checked (--json-only): only report.json was "
                                        "verified, not the HTML, Markdown or manifest")
