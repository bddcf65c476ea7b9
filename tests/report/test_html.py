"""The HTML is one self-contained file; archive content renders as text in HTML and Markdown."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from forensics.report.html import CSP, render_html
from forensics.report.markdown import code, render_markdown, text
from forensics.report.signing import SigningKey, sign
from tests.conftest import ARCHIVES, PAYMENTS, masked
from tests.report.conftest import Built, build
from tests.report.hostile import IMG, SCRIPT, hostile_archive


@pytest.mark.parametrize("archive", ARCHIVES)
def test_html_is_self_contained_and_scriptless(built: dict[str, Built], key: SigningKey,
                                               archive: str) -> None:
    page = render_html(sign(built[archive].document, key))
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                           "<meta http-equiv=\"Content-Security-Policy\" "
                           f"content=\"{html.escape(CSP)}\">")
    assert "<script" not in page.lower()
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert " src=" not in page
    assert set(re.findall(r'href="(.)', page)) == {"#"}  # only links within the page
    assert re.findall(r" on[a-z]+=", page) == []


def test_reverse_shell_page_content(built: dict[str, Built], key: SigningKey) -> None:
    page = render_html(sign(built[PAYMENTS].document, key))
    assert '<div class="sev verdict sev-critical" id="verdict">CRITICAL</div>' in page
    assert ('<li id="pid-9" class="proc flagged"><div class="line"><code>[9]</code> '
            '<strong class="mono">sh -i</strong>') in page
    assert "sk_live_51ExampleExampleExample" not in page
    assert masked("sk_live_51ExampleExampleExample") in page
    assert built[PAYMENTS].truth_sha256 in page


def test_hostile_names_are_text(tmp_path: Path, key: SigningKey) -> None:
    hostile = build(PAYMENTS, str(hostile_archive(tmp_path)))
    paths = {f["path"] for f in hostile.document["files"]}
    assert {f"/tmp/{SCRIPT}", f"/tmp/{IMG}"} <= paths
    doc = sign(hostile.document, key)
    page = render_html(doc)
    assert SCRIPT not in page and IMG not in page and "<img" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    md = render_markdown(doc)
    # code spans are literal text in Markdown; outside them, nothing may be a tag
    outside = re.sub(r"(`+)(.+?)\1", "", md)
    assert "<script" not in outside and "<img" not in outside
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in outside
    assert f"`/tmp/{SCRIPT}`" in md


def test_markdown_escaping() -> None:
    assert text("*bold* <b> a|b [x](http://evil) www.evil.com") == (
        "\\*bold\\* &lt;b&gt; a\\|b \\[x\\](http\\://evil) www\\.evil.com")
    assert code("a`b") == "``a`b``"
    assert code("`x`") == "`` `x` ``"
    assert code("a|b", cell=True) == "`a\\|b`"
    assert code("line\nbreak") == "`line\\nbreak`"  # a newline is shown, not a space
