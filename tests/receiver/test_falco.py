"""Falco alert validation and fingerprints."""

from __future__ import annotations

import json

import pytest

from forensics.receiver.falco import (
    InvalidAlert,
    InvalidJson,
    canonical_priority,
    decode_alert,
    parse_alert,
    parse_time,
)
from tests.receiver.conftest import FALCO, INTERNAL, PAYMENTS, SHOP, alert_bytes, alert_json


@pytest.mark.parametrize("path", sorted(FALCO.glob("*.json")), ids=lambda p: p.name)
def test_every_fixture_is_a_valid_alert(path: object) -> None:
    alert = decode_alert(path.read_bytes())  # type: ignore[attr-defined]
    assert alert.rule and alert.priority and alert.time_ns > 0
    assert alert.id == decode_alert(path.read_bytes()).id  # type: ignore[attr-defined]


def test_fields_as_csi_reads_them() -> None:
    alert = decode_alert(alert_bytes(SHOP))
    assert (alert.rule, alert.priority, alert.source, alert.hostname) == (
        "Drop and execute new binary in container", "Critical", "syscall", "worker-2")
    assert alert.field("evt.time") == 1795935593912345678  # numbers stay numbers
    assert alert.text("k8s.pod.name") == "shop-frontend-7d9c6b5f4-x2x9q"
    assert alert.time_ns == 1795331393_912345678
    assert "container" in alert.tags
    nulls = decode_alert(alert_bytes("unresolved-pod-null-fields.json"))
    assert nulls.field("k8s.pod.name") is None and nulls.text("k8s.pod.name") == ""


@pytest.mark.parametrize(("given", "canonical"), [
    ("Critical", "Critical"), ("CRITICAL", "Critical"), ("critical", "Critical"),
    ("emergency", "Emergency"), ("Informational", "Informational"), ("info", "Informational"),
    (" Debug ", "Debug"), ("notice", "Notice"), ("ERROR", "Error"), ("alert", "Alert"),
    ("warning", "Warning")])
def test_priorities_are_case_insensitive(given: str, canonical: str) -> None:
    assert canonical_priority(given) == canonical


@pytest.mark.parametrize("bad", ["Severe", "", 3, None, "warn"])
def test_unknown_priorities_are_refused(bad: object) -> None:
    with pytest.raises(InvalidAlert, match="not a Falco priority"):
        canonical_priority(bad)


@pytest.mark.parametrize(("text", "nanos"), [
    ("2026-11-22T07:09:53.912345678Z", 1795331393_912345678),
    ("2026-11-22T07:10:26.40012Z", 1795331426_400120000),  # falcosidekick drops zeros
    ("2026-11-22T07:10:26Z", 1795331426_000000000),
    ("2026-11-22T08:10:26.5+01:00", 1795331426_500000000),
    ("2026-11-22t07:10:26.000000001z", 1795331426_000000001),
])
def test_rfc3339_times(text: str, nanos: int) -> None:
    assert parse_time(text) == nanos


@pytest.mark.parametrize("bad", ["2026-11-22 07:09:53Z", "2026-11-22T07:09:53.1234567891Z",
                                 "2026-13-22T07:09:53Z", "2026-11-22T07:09:53", 1795935026,
                                 "yesterday"])
def test_bad_times_are_refused(bad: object) -> None:
    with pytest.raises(InvalidAlert, match="time"):
        parse_time(bad)


def test_fingerprint_is_the_sidekick_uuid_or_a_canonical_hash() -> None:
    sidekick = decode_alert(alert_bytes(PAYMENTS))
    assert sidekick.fingerprint == "uuid:6f1c3a52-9d0e-4b8e-a1f4-2c7d9e3b8a10"
    data = alert_json(SHOP)
    plain = decode_alert(json.dumps(data).encode())
    assert plain.fingerprint.startswith("sha256:")
    reordered = json.dumps(dict(reversed(list(data.items()))), indent=2).encode()
    assert decode_alert(reordered).fingerprint == plain.fingerprint  # canonical
    retimed = decode_alert(json.dumps(data | {"time": "2026-11-22T07:09:54.0Z"}).encode())
    assert retimed.fingerprint != plain.fingerprint and retimed.id != plain.id


def test_missing_source_means_syscall_and_internal_is_kept() -> None:
    data = alert_json(SHOP)
    del data["source"]
    assert parse_alert(data).source == "syscall"
    assert decode_alert(alert_bytes(INTERNAL)).source == "internal"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "invalid JSON"), (b"{", "invalid JSON"), (b"null", "not null"),
    (b'"text"', "not a string"), (b"[]", "not an array"), (b"{}", "'rule' is missing"),
    (b'{"rule": Infinity}', "Infinity is not a JSON value"),
    (b"[" * 100_000, "invalid JSON")])
def test_decoding_errors_are_one_line(body: bytes, message: str) -> None:
    with pytest.raises(InvalidAlert) as error:
        decode_alert(body)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_json_errors_are_distinguished_from_invalid_alerts() -> None:
    with pytest.raises(InvalidJson):
        decode_alert(b"{")
    with pytest.raises(InvalidAlert) as error:
        decode_alert(b"{}")
    assert not isinstance(error.value, InvalidJson)


def test_output_fields_values() -> None:
    data = alert_json(SHOP)
    data["output_fields"] = {"a": 1, "b": 1.5, "c": None, "d": "x", "e": True}
    assert parse_alert(data).output_fields["c"] is None
    for bad in ({"a": [1]}, {"a": {"b": 1}}, ["a"]):
        with pytest.raises(InvalidAlert, match="output_fields"):
            parse_alert(data | {"output_fields": bad})
