"""Property: whatever body a client sends, ``csi serve`` answers it without a 5xx.

Hypothesis generates alert bodies (valid alerts with hostile field values,
valid alerts mutated, random JSON, random bytes, huge integers, lone
surrogates, non-finite numbers, deep nesting) and posts them, authenticated,
to one real ``csi serve`` subprocess. For every body: no 5xx; a 2xx alert is
in the journal (read back through ``/api/v1/alerts/{id}``). At the end the
log holds no traceback and only whole records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.receiver.conftest import SHOP, TOKEN, alert_json
from tests.receiver.serve_process import (
    ServeProcess,
    forged_lines,
    raw_exchange,
    split_response,
)

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
FIELDS = ("container.name", "container.id", "k8s.pod.name", "k8s.ns.name", "proc.name",
          "proc.cmdline", "fd.name")
TOP = ("rule", "priority", "time", "source", "hostname", "output", "tags", "output_fields",
       "uuid")

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=12)


@st.composite
def valid_alerts(draw: st.DrawFn) -> bytes:
    """The fixture alert with hostile values in its container fields (control characters,
    option-like names, numbers, nulls)."""
    alert = alert_json(SHOP)
    fields = dict(alert["output_fields"])
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        fields[name] = draw(st.none() | st.integers() | text | st.sampled_from(
            ["--latest", "-l", "--help", "web\n2026-01-01 csi serve INFO forged", "\x1b[2J"]))
    alert["output_fields"] = fields
    alert["time"] = draw(st.sampled_from([alert["time"], "2026-11-22T07:10:00Z"]))
    return json.dumps(alert).encode()


@st.composite
def mutated_alerts(draw: st.DrawFn) -> bytes:
    """The fixture alert with a top-level field removed or replaced by any JSON value."""
    alert: dict[str, Any] = alert_json(SHOP)
    key = draw(st.sampled_from(TOP))
    if draw(st.booleans()):
        alert.pop(key, None)
    else:
        alert[key] = draw(json_values)
    return json.dumps(alert, allow_nan=True).encode()


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """A valid alert with one raw JSON value spliced in: huge integers, lone surrogates,
    non-finite numbers, deep nesting."""
    depth = draw(st.integers(1, 5000))
    raw = draw(st.sampled_from([
        b"9" * draw(st.integers(4000, 6000)),
        b"-" + b"1" * draw(st.integers(4290, 4310)),
        b'"\\ud800"', b'"x\\udfff"', b'"\\ud83d\\ude00"', b'{"\\udc80": 1}',
        b"1e999", b"-1e999", b"1e-999", b"NaN", b"Infinity",
        b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth,
    ]))
    where = draw(st.sampled_from([b'"output_fields": {', b'{']))
    body = json.dumps(alert_json(SHOP)).encode()
    return body.replace(where, where + b'"spliced": ' + raw + b", ", 1)


bodies = st.one_of(  # the hostile splices twice: they find the most
    spliced(), valid_alerts(), mutated_alerts(), spliced(),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()), st.binary(max_size=512))


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("receiver-properties")
    with ServeProcess(tmp) as process:
        yield process
    log = process.text()
    assert "Traceback" not in log, log[-3000:]
    assert forged_lines(log) == [], forged_lines(log)[:5]


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies)
def test_any_body_gets_no_5xx_and_every_2xx_is_journaled(
        serve: ServeProcess, session: requests.Session, body: bytes) -> None:
    reply = session.post(serve.url + "/falco", data=body, headers=HEADERS, timeout=30)
    assert reply.status_code < 500, reply.text
    answer = reply.json()
    assert isinstance(answer, dict)
    if reply.status_code < 300:
        alert = session.get(f"{serve.url}/api/v1/alerts/{answer['id']}", headers=HEADERS,
                            timeout=30)
        assert alert.status_code == 200, alert.text
        assert alert.json()["id"] == answer["id"]
    else:
        assert set(answer) == {"error"} and "\n" not in answer["error"]


header_values = st.binary(min_size=1, max_size=200).map(
    lambda v: v.replace(b"\r", b"").replace(b"\n", b"").strip() or b"x")


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from([b"Authorization", b"X-CSI-Signature", b"Content-Type",
                             b"Expect", b"Content-Encoding"]), value=header_values)
def test_any_header_value_gets_a_json_answer_and_no_5xx(
        serve: ServeProcess, name: bytes, value: bytes) -> None:
    """Raw header bytes (non-ASCII, invalid UTF-8, control characters) in the headers
    the receiver reads: a 2xx or a 4xx with one line of JSON, never a 5xx."""
    body = json.dumps(alert_json(SHOP)).encode()
    auth = b"" if name == b"Authorization" else b"Authorization: Bearer " + TOKEN.encode() \
        + b"\r\n"
    raw = raw_exchange(serve.port, b"POST /falco HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       + auth + name + b": " + value + b"\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\n\r\n" + body, timeout=30)
    status, headers, answer = split_response(raw.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n"))
    assert 200 <= status < 500, raw[:300]
    assert headers["content-type"].startswith("application/json"), raw[:300]
    assert b"\n" not in answer and isinstance(json.loads(answer), dict)
