"""roles/vllm_stack/library/vllm_stack_files.py run by Ansible itself (ad-hoc, connection local).

The role's render, Molecule and fleet tests go through it on every run; these cases pin what they
do not reach one by one: check mode writes nothing, --diff never carries a secret file, a mode
change alone is a change, a copy from a missing source names it, and a second run is quiet.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from adhoc import run_module

SECRET = "hf_module_test_secret_5d1c"


def _module(args: dict, *flags: str) -> dict:
    result, printed = run_module("vllm_stack", "vllm_stack_files", args, *flags)
    assert SECRET not in printed, "the secret file's content was printed"
    return result


def _args(tmp: Path, compose: str = "services: {}\n", mode: str = "0644") -> dict:
    return {
        "owner": str(os.getuid()), "group": str(os.getgid()),
        "directories": [{"path": str(tmp / "stack"), "mode": "0755"}, {"path": str(tmp / "stack" / ".staging"), "mode": "0700"}],
        "files": [{"name": "c.yml", "path": str(tmp / "stack" / ".staging" / "c.yml"), "mode": mode, "content": compose,
                   "compare": str(tmp / "stack" / "c.yml")}],
        "secret_files": [{"name": ".env", "path": str(tmp / "stack" / ".staging" / ".env"), "mode": "0600",
                          "content": f"HF_TOKEN='{SECRET}'\n", "compare": str(tmp / "stack" / ".env")}],
    }


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_writes_everything_and_the_second_changes_nothing(tmp_path):
    first = _module(_args(tmp_path), "--diff")
    assert first["changed"] is True and not first.get("failed")
    staging = tmp_path / "stack" / ".staging"
    assert _mode(staging) == 0o700 and _mode(staging / ".env") == 0o600 and _mode(staging / "c.yml") == 0o644
    assert (staging / ".env").read_text() == f"HF_TOKEN='{SECRET}'\n"
    # --diff shows the plain file only
    assert [d["after_header"] for d in first["diff"]] == [str(staging / "c.yml")]
    assert first["diff"][0]["after"] == "services: {}\n"
    # the installed file does not exist yet
    assert [f["compare"] for f in first["files"]] == [{"exists": False, "checksum": ""}] * 2
    assert [f["name"] for f in first["files"]] == ["c.yml", ".env"]
    second = _module(_args(tmp_path), "--diff")
    assert second["changed"] is False and "diff" not in second
    assert not any(f["changed"] for f in second["files"])


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path):
    _module(_args(tmp_path))
    target = tmp_path / "stack" / ".staging" / "c.yml"
    before = target.stat().st_mtime_ns
    result = _module(_args(tmp_path, compose="services: {a: {image: x}}\n"), "--check", "--diff")
    assert result["changed"] is True
    assert result["diff"][0]["before"] == "services: {}\n" and "image: x" in result["diff"][0]["after"]
    assert target.read_text() == "services: {}\n" and target.stat().st_mtime_ns == before
    assert [f["changed"] for f in result["files"]] == [True, False]


def test_a_mode_change_alone_is_a_change(tmp_path):
    _module(_args(tmp_path))
    result = _module(_args(tmp_path, mode="0640"))
    assert result["changed"] is True
    assert _mode(tmp_path / "stack" / ".staging" / "c.yml") == 0o640


def test_copies_from_the_host_and_names_a_missing_source(tmp_path):
    _module(_args(tmp_path))
    staging = tmp_path / "stack" / ".staging"
    copy = {"owner": str(os.getuid()), "group": str(os.getgid()), "files": [
        {"path": str(tmp_path / "stack" / "c.yml"), "src": str(staging / "c.yml"), "mode": "0644"},
        {"path": str(tmp_path / "stack" / ".env"), "src": str(staging / ".env"), "mode": "0600", "secret": True}]}
    result = _module(copy, "--diff")
    assert result["changed"] is True and (tmp_path / "stack" / ".env").read_text() == (staging / ".env").read_text()
    assert [d["after_header"] for d in result["diff"]] == [str(tmp_path / "stack" / "c.yml")]
    missing = _module({"files": [{"path": str(tmp_path / "x"), "src": str(tmp_path / "nowhere"), "mode": "0644"}]})
    assert missing.get("failed") and str(tmp_path / "nowhere") in missing["msg"]
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the file another owner needs root (make test runs as root)")
def test_without_owner_and_group_an_existing_file_keeps_its_own(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("{}\n")
    os.chown(target, 4321, 4321)
    os.chmod(target, 0o644)
    result = _module({"files": [{"path": str(target), "mode": "0644", "content": "{}\n"}]})
    assert result["changed"] is False
    assert (target.stat().st_uid, target.stat().st_gid) == (4321, 4321)


def test_look_for_names_what_existed_before_the_run(tmp_path):
    other = tmp_path / "stack" / "other.yml"
    args = dict(_args(tmp_path), look_for=[str(other), str(tmp_path / "stack" / ".staging" / "c.yml")])
    # neither exists before the first run, though the run itself creates the second
    assert _module(args)["found"] == []
    other.write_text("services: {}\n")
    assert _module(args, "--check")["found"] == [str(other), str(tmp_path / "stack" / ".staging" / "c.yml")]
