"""issue 12 item 4: ``-o/--output`` is a format on every command (text, json, yaml),
``--format`` its checkpointctl-compatible alias; files are ``-f/--out-file``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from forensics.cli.main import main
from forensics.cli.memparse_cmd import main as memparse_main
from forensics.cli.output import dump_yaml
from tests.conftest import LISTENER, archive_path

SIZES = [{"pid": 1, "name": "sh", "memory": 77824, "shared": 0},
         {"pid": 7, "name": "nc", "memory": 61440, "shared": 0},
         {"pid": 10, "name": "sleep", "memory": 65536, "shared": 0}]
MATCHES = [{"pid": 1, "address": 0x27df5a67, "instance": 1, "match": "nc -l"},
           {"pid": 1, "address": 0x7ffd3f352f48, "instance": 2, "match": "nc -l"}]


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [["show"], ["inspect", "--all"]])
def test_o_json_yaml_and_format_alias_agree(capsys: pytest.CaptureFixture[str],
                                            command: list[str]) -> None:
    path = archive_path(LISTENER)
    _out(capsys, *command, path)  # the archive's digest cached: every run says so alike
    as_o = _out(capsys, *command, "-o", "json", path)
    assert _out(capsys, *command, "--output", "json", path) == as_o
    assert _out(capsys, *command, "--format", "json", path) == as_o
    assert yaml.safe_load(_out(capsys, *command, "-o", "yaml", path)) == json.loads(as_o)


def test_checkpointctl_words_for_text_still_mean_text(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    path = archive_path(LISTENER)
    _out(capsys, "show", path)  # the archive's digest cached: every run says so alike
    assert _out(capsys, "inspect", "--format", "tree", path) == _out(capsys, "inspect", path)
    assert _out(capsys, "show", "-o", "table", path) == _out(capsys, "show", "-o", "text", path)


def test_an_unknown_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "-o", "xml", archive_path(LISTENER)]) == 2
    assert "'xml' is not one of 'text', 'json', 'yaml', 'tree', 'table'" in \
        capsys.readouterr().err


def test_memparse_sizes_and_matches_as_json_and_yaml(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    path = archive_path(LISTENER)
    assert memparse_main([path, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == SIZES
    assert memparse_main([path, "--format", "yaml", "--pid", "1", "-s", "nc -l"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == MATCHES


def test_memparse_out_file_takes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    target = tmp_path / "matches.json"
    assert memparse_main([archive_path(LISTENER), "--pid", "1", "-s", "nc -l", "-o", "json",
                          "--out-file", str(target)]) == 0
    assert json.loads(target.read_text()) == MATCHES
    assert capsys.readouterr().out == ""


def test_memparse_hexdump_is_text_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert memparse_main([archive_path(LISTENER), "--pid", "1", "-o", "json"]) == 2
    assert capsys.readouterr().err == (
        "csi: error: memparse: -o json is for the sizes and the matches; a hexdump is text "
        "(drop -o, or add --search)\n")


def test_memparse_o_with_a_file_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert memparse_main([archive_path(LISTENER), "--pid", "1", "-o", "out.txt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("csi: error: memparse: argument -o/--output/--format: invalid "
                          "choice: 'out.txt'")


def test_yaml_escapes_control_characters_and_lone_surrogates(
        capsys: pytest.CaptureFixture[str]) -> None:
    dump_yaml([{"comm": "x\x1b[31mred\udcff", "n": 1}])
    out = capsys.readouterr().out
    assert out == '- comm: "x\\e[31mred\\uDCFF"\n  n: 1\n'
    assert "\x1b" not in out


def test_pull_takes_its_file_as_out_file_not_o(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "localhost:1/x:y", "-o", "x.tar"]) == 2
    assert "Invalid value for '-o' / '--output' / '--format': 'x.tar' is not one of" in \
        capsys.readouterr().err
    assert main(["pull", "localhost:1/x:y"]) == 2
    assert "Missing option '-f' / '--out-file'" in capsys.readouterr().err


def test_diff_as_yaml_is_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = archive_path(LISTENER)
    as_json = json.loads(_out(capsys, "diff", path, path))
    assert as_json["same_container"] is True
    assert yaml.safe_load(_out(capsys, "diff", "-o", "yaml", path, path)) == as_json
