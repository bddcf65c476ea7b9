"""Attacks on stored evidence: re-signed reports, a deleted manifest, swapped folders,
a corrupt index, and files others can read. Each must fail loudly, never verify."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from forensics.report.canonical import canonical_bytes
from forensics.report.publish import manifest, render_files
from forensics.report.signing import SigningKey, sign
from tests.conftest import CRIU41, SHOP
from tests.report.test_cli import run, save


def attacker_key(tmp_path: Path) -> tuple[SigningKey, Path]:
    """A fresh Ed25519 key, as an attacker would make one, and its public PEM file."""
    key = SigningKey(Ed25519PrivateKey.generate(), "attacker")
    pem = tmp_path / "attacker.pub"
    pem.write_text(key.public_pem())
    return key, pem


def resign(folder: Path, key: SigningKey, change: Any = None) -> dict[str, Any]:
    """Alter the report in ``folder`` and write it back re-signed, manifest and renderings too."""
    doc = json.loads((folder / "report.json").read_bytes())
    body = {k: v for k, v in doc.items() if k != "signature"}
    if change:
        change(body)
    signed = sign(body, key)
    files = render_files(signed)
    files["manifest.json"] = canonical_bytes(sign(manifest(signed["id"], files), key))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return signed


def hide_findings(body: dict[str, Any]) -> None:
    body["findings"][0]["summary"] = "nothing to see here"


def test_report_resigned_with_a_fresh_key_in_the_store_fails(
        capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    rid = save(capsys, CRIU41)
    folder = home / "reports" / rid
    key, _ = attacker_key(tmp_path)
    resign(folder, key, hide_findings)
    code, out, err = run(capsys, "report", "verify", "--skip-archive", rid)
    assert code == 3
    assert "FAILED  signature: report.json: signed by sha256:" in out
    assert (f"(this installation's key)); if you trust this signer, add it to "
            f"{home / 'trusted-keys'} or give --key-fingerprint {key.fingerprint}; ") in err
    assert "report.json has sha256 " in err and "the file was replaced" in err
    assert err.startswith(f"csi: error: report {rid} FAILED verification: report.json: signed "
                          f"by {key.fingerprint}, which is not a trusted key")
    assert len(err.splitlines()) == 1
    # even once the attacker's key is trusted, the index remembers which file was stored
    (home / "trusted-keys").write_text(f"# the attacker\n{key.fingerprint}\n")
    code, out, err = run(capsys, "report", "verify", "--skip-archive", rid)
    assert code == 3
    assert f"ok  signature: Ed25519 signature by {key.fingerprint} (trusted-keys:2)" in \
        out.replace("\n", " ")
    assert "FAILED  store index: report " in out
    assert "csi report reindex" not in err


def test_report_file_from_an_unknown_signer_fails_unless_named(
        capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    rid = save(capsys, CRIU41)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("report.json", "report.html", "report.md", "manifest.json"):
        (outside / name).write_bytes((home / "reports" / rid / name).read_bytes())
    key, pem = attacker_key(tmp_path)
    resign(outside, key, hide_findings)
    code, out, err = run(capsys, "report", "verify", "--skip-archive", str(outside))
    assert code == 3
    assert f"signed by {key.fingerprint}, which is not a trusted key" in err
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", "--key", str(pem),
                       str(outside / "report.json"))
    assert code == 0, out
    assert f"signature by {key.fingerprint} (--key {pem}) verifies" in out
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", "--key-fingerprint",
                       key.fingerprint.removeprefix("sha256:").upper(), str(outside))
    assert code == 0 and out.splitlines()[-1] == f"report {rid}: verified"
    # naming a key means: only that key, not the installation's
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", "--key", str(pem), rid)
    assert code == 3
    assert "FAILED  signature: report.json: signed by sha256:" in out
    assert f"not by the expected key {key.fingerprint}" in out


def test_report_verify_with_no_trusted_key_at_all_fails(
        capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    rid = save(capsys, CRIU41)
    copy = tmp_path / "copy.json"
    copy.write_bytes((home / "reports" / rid / "report.json").read_bytes())
    (home / "keys" / "report-signing-ed25519.pem").unlink()  # another machine: no key
    code, _, err = run(capsys, "report", "verify", "--json-only", "--skip-archive", str(copy))
    assert code == 3
    assert "no key is trusted here: this installation has no signing key and no trusted-keys " \
        "file" in err
    assert not (home / "keys" / "report-signing-ed25519.pem").exists()  # verify made none


def test_trusted_keys_file_with_a_bad_line_is_one_error(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    rid = save(capsys, CRIU41)
    (home / "trusted-keys").write_text("sha256:1234\n")
    code, _, err = run(capsys, "report", "verify", "--skip-archive", rid)
    assert code == 1
    assert err == (f"csi: error: {home / 'trusted-keys'}:1: neither a key fingerprint "
                   "(sha256:<64 hex>) nor a base64 Ed25519 public key (fix or remove the line)\n")


def test_deleted_manifest_with_an_edited_html_fails(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    rid = save(capsys, CRIU41)
    folder = home / "reports" / rid
    html = folder / "report.html"
    html.write_bytes(html.read_bytes().replace(b"csi evidence report", b"all clear, no report"))
    (folder / "manifest.json").unlink()
    code, out, err = run(capsys, "report", "verify", "--skip-archive", rid)
    assert code == 3
    assert "FAILED  renderings: manifest.json: missing beside " in out
    assert err == (f"csi: error: report {rid} FAILED verification: manifest.json: missing "
                   f"beside {folder / 'report.json'}: the HTML and Markdown cannot be checked "
                   "(the manifest is part of the evidence; --json-only checks the JSON alone)\n")
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", "--json-only", rid)
    assert code == 0
    assert "skip  renderings: not checked (--json-only)" in out


def test_manifest_naming_other_files_fails(capsys: pytest.CaptureFixture[str], home: Path,
                                           tmp_path: Path) -> None:
    rid = save(capsys, CRIU41)
    folder = home / "reports" / rid
    key = SigningKey(Ed25519PrivateKey.generate(), "x")
    files = {"report.json": (folder / "report.json").read_bytes()}  # html/md left out
    forged = sign(manifest(rid, files), key)
    (folder / "manifest.json").write_bytes(canonical_bytes(forged))
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", rid)
    assert code == 3
    assert "manifest.json: signed by another key than the report" in out
    assert ("manifest.json: lists ['report.json'], not ['report.html', 'report.json', "
            "'report.md']") in out


def test_swapped_report_folders_fail_verification(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    a, b = save(capsys, CRIU41), save(capsys, SHOP)
    root = home / "reports"
    os.rename(root / a, root / "swap")
    os.rename(root / b, root / a)
    os.rename(root / "swap", root / b)
    code, out, err = run(capsys, "report", "verify", "--skip-archive", a)
    assert code == 3
    assert f"report {b}: verified" not in out
    assert (f"FAILED  store index: report folder {a}: holds report {b}, not {a}: report "
            "folders were swapped or copied over each other") in out
    assert err.startswith(f"csi: error: report {b} FAILED verification: report folder {a}: "
                          f"holds report {b}")
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", str(root / a))
    assert code == 3 and f"holds report {b}, not {a}" in out
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", str(root / b / "report.json"))
    assert code == 3 and f"holds report {a}, not {b}" in out


def test_corrupt_index_points_at_reindex_which_rebuilds_it(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    a, b = save(capsys, CRIU41), save(capsys, SHOP)
    root = home / "reports"
    index = root / "index.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.write_bytes(b"this is not an SQLite database, it was overwritten" * 100)
    for command in (["list"], ["show", a], ["verify", a], ["export", a, "-f", "-"]):
        code, _, err = run(capsys, "report", *command)
        assert code == 1, command
        assert err == (f"csi: error: {index}: report index error: file is not a database "
                       "(`csi report reindex` rebuilds the index from the report folders)\n")
    html = root / b / "report.html"
    html.write_bytes(html.read_bytes() + b"<!-- added -->")
    (root / "ffff00000000").mkdir()  # a folder that is no report
    code, out, err = run(capsys, "report", "reindex")
    assert code == 0, err
    assert out == f"1 report(s) indexed, 2 folder(s) left out ({index})\n"
    lines = err.splitlines()
    assert lines[0].startswith(f"the corrupt index was moved aside to {index}.corrupt-")
    assert lines[1].startswith(f"not indexed: {b}: report.html: sha256 ")
    assert lines[2].startswith("not indexed: ffff00000000: [Errno 2] No such file")
    code, out, _ = run(capsys, "report", "list", "-o", "json")
    assert [r["id"] for r in json.loads(out)] == [a]
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", a)
    assert code == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_reports_and_their_index_are_not_readable_by_others(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    old = os.umask(0o022)
    try:
        home.mkdir(mode=0o755)
        rid = save(capsys, CRIU41)
    finally:
        os.umask(old)
    root = home / "reports"
    assert (mode(home), mode(root), mode(root / rid)) == (0o700, 0o700, 0o700)
    assert {p.name: mode(p) for p in (root / rid).iterdir()} == {
        "report.json": 0o600, "report.html": 0o600, "report.md": 0o600, "manifest.json": 0o600}
    assert mode(root / "index.sqlite3") == 0o600
    assert mode(home / "keys" / "report-signing-ed25519.pem") == 0o600
    with sqlite3.connect(root / "index.sqlite3") as conn:
        assert conn.execute("SELECT id FROM reports").fetchall() == [(rid,)]



def test_reindex_never_moves_aside_an_index_of_a_newer_csi(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    rid = save(capsys, CRIU41)
    index = home / "reports" / "index.sqlite3"
    with sqlite3.connect(index) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    code, _, err = run(capsys, "report", "reindex")
    assert code == 1
    assert err.startswith(f"csi: error: {index}: the report index has schema version 99, "
                          "this csi knows up to 1 (use a newer csi)")
    assert [p.name for p in index.parent.iterdir() if ".corrupt-" in p.name] == []
    with sqlite3.connect(index) as conn:
        assert conn.execute("SELECT id FROM reports").fetchall() == [(rid,)]


def test_a_fifo_planted_in_a_report_folder_fails_instead_of_hanging(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    rid, other = save(capsys, CRIU41), save(capsys, SHOP)
    folder = home / "reports" / rid
    (folder / "report.html").unlink()
    os.mkfifo(folder / "report.html")
    code, out, _ = run(capsys, "report", "verify", "--skip-archive", rid)
    assert code == 3
    assert "FAILED  renderings: report.html: cannot be read (not a regular file)" in out
    (home / "reports" / other / "report.json").unlink()
    os.mkfifo(home / "reports" / other / "report.json")
    code, _, err = run(capsys, "report", "verify", "--skip-archive", other)
    assert (code, err) == (1, f"csi: error: {home / 'reports' / other / 'report.json'}: cannot "
                              "read: not a regular file\n")
    code, out, err = run(capsys, "report", "reindex")
    assert code == 0 and out.startswith("0 report(s) indexed, 2 folder(s) left out")
