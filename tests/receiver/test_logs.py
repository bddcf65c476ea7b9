"""The receiver's log: one line per record whatever an alert holds; client trouble tallied."""

from __future__ import annotations

import logging

import pytest

from forensics.cli.serve_cmds import LOG_FORMAT
from forensics.receiver.logs import OneLineFormatter, Tally, visible


def test_container_name_with_newline_formats_as_exactly_one_line() -> None:
    name = "web\n2026-12-03 07:00:00,000 csi serve INFO fake log line\r\x1b[2J\x85\u2028"
    record = logging.LogRecord("csi.receiver", logging.INFO, __file__, 1,
                               "capture %s queued for %s", ("c1", f"k8s/prod/pod/{name}"), None)
    line = OneLineFormatter(LOG_FORMAT).format(record)
    assert line.splitlines() == [line]
    assert line.endswith(" csi serve INFO capture c1 queued for k8s/prod/pod/web\\n2026-12-03 "
                         "07:00:00,000 csi serve INFO fake log line\\r\\x1b[2J\\x85\\u2028")


def test_traceback_of_a_record_stays_on_its_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("csi.receiver", logging.ERROR, __file__, 1, "failed", (),
                                   __import__("sys").exc_info())
    line = OneLineFormatter(LOG_FORMAT).format(record)
    assert "\n" not in line and "ValueError: bad\\nvalue" in line


def test_visible_leaves_plain_text_alone() -> None:
    text = "plain text, tabs aside: é ü 日本"
    assert visible(text) is text
    assert visible("a\tb\x00c\x7f") == "a\\tb\\x00c\\x7f"


def test_tally_logs_the_first_event_then_one_line_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    tally = Tally(interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "csi.receiver"):
        tally.note("malformed requests", "400 Invalid method")
        for _ in range(999):
            tally.note("malformed requests", "400 Invalid header\nforged")
            tally.note("idle connections closed at the limit of 192")
        now[0] += 61
        tally.flush()
        tally.flush(force=True)  # nothing new: nothing logged
    assert [r.getMessage() for r in caplog.records] == [
        "clients: 1 malformed requests (last: 400 Invalid method)",
        "clients: 999 idle connections closed at the limit of 192; 999 malformed requests "
        "(last: 400 Invalid header\nforged) in the last 61s",
    ]
    assert tally.total["malformed requests"] == 1000
