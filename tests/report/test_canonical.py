"""Canonical JSON is RFC 8785 (JCS); archive bytes that are not UTF-8 become visible escapes."""

from __future__ import annotations

import pytest

from forensics.report.canonical import (
    canonical_bytes,
    es_number,
    json_safe,
    part_digests,
    pointer,
    sha256_hex,
)
from forensics.report.errors import ReportError


@pytest.mark.parametrize(("value", "text"), [
    # RFC 8785 appendix B and ECMAScript's Number#toString
    (0.0, "0"), (-0.0, "0"), (1.0, "1"), (4.5, "4.5"), (0.002, "0.002"), (1e-7, "1e-7"),
    (0.000001, "0.000001"), (1e21, "1e+21"), (1e30, "1e+30"),
    (123e18, "123000000000000000000"), (123e20, "1.23e+22"),
    (9007199254740992.0, "9007199254740992"), (-1.5e-5, "-0.000015"), (333333333.3333333,
                                                                      "333333333.3333333"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_numbers_as_ecmascript_prints_them(value: float, text: str) -> None:
    assert es_number(value) == text


def test_rfc8785_example() -> None:
    value = {"numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
             "string": "€$\u000f\nA'B\"\\\\\"/", "literals": [None, True, False]}
    assert canonical_bytes(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()


def test_keys_sorted_by_utf16_code_units() -> None:
    # U+1F600 (surrogates D83D DE00) sorts before U+FB01 in UTF-16, after it in code points
    assert canonical_bytes({"\ufb01": 1, "\U0001f600": 2, "a": 3}) == \
        '{"a":3,"😀":2,"ﬁ":1}'.encode()


def test_json_safe_makes_archive_bytes_visible() -> None:
    raw = b"/tmp/evil\xff\xfe.sh".decode("utf-8", "surrogateescape")
    assert json_safe({"path": raw, "t": (1, 2), "n": float("nan")}) == {
        "path": "/tmp/evil\\xff\\xfe.sh", "t": [1, 2], "n": "nan"}
    with pytest.raises(ReportError, match="not valid Unicode"):
        canonical_bytes({"path": raw})


def test_part_digests_name_list_items_and_leaves() -> None:
    doc = {"findings": [{"rule": "a"}, {"rule": "b"}], "custody": {"archive": {"sha256": "x"}},
           "a/b": [], "signature": {"value": "ignored"}}
    digests = part_digests(doc)
    assert sorted(digests) == ["/a~1b", "/custody/archive/sha256", "/findings/0", "/findings/1"]
    assert digests["/findings/1"] == sha256_hex(b'{"rule":"b"}')
    assert pointer(["a/b", "~", 3]) == "/a~1b/~0/3"


def test_archive_data_nested_5000_levels_deep_is_signed_without_recursion_error() -> None:
    """Nested data from the archive (annotations, spec.dump) is the attacker's: 5,000 levels
    of {"a": [...]} once raised RecursionError in json_safe, canonical_bytes and
    part_digests, and the capture failed with no report."""
    deep: list[object] = []
    cursor = deep
    for _ in range(5000):
        inner: list[object] = []
        cursor.append({"a\udcff": inner})
        cursor = inner
    safe = json_safe({"x": {"y": deep}})
    data = canonical_bytes(safe)
    assert data == b'{"x":{"y":' + b'[{"a\\\\xff":' * 5000 + b"[]" + b"}]" * 5000 + b"}}"
    nested: dict[str, object] = {}
    top = nested
    for _ in range(3000):
        nested["k"] = {}
        nested = nested["k"]  # type: ignore[assignment]
    nested["v"] = 1
    digests = part_digests({"doc": top})
    assert digests == {"/doc" + "/k" * 3000 + "/v": sha256_hex(b"1")}
