"""The systemctl double: what ansible.builtin.systemd_service reads, and Docker restarts.

ansible-core's systemd_service module runs `systemctl show UNIT` and parses key=value lines
(LoadState, ActiveState, ...), then `systemctl restart UNIT` when asked; the double logs each
action so tests can count restarts and daemon-reloads, and a restart makes the docker double
re-read daemon.json (refusing an invalid one, as dockerd does).
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def env(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    return {"LIBRA_TEST_DOCKER_DIR": str(tmp_path / "docker"), "LIBRA_TEST_DAEMON_JSON": str(daemon_json),
            "LIBRA_TEST_ETC": str(tmp_path / "etc"), "LIBRA_TEST_SHARE": str(tmp_path / "share"),
            "LIBRA_TEST_DOCKER_BIN": f"{shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'bin' / 'docker'))}",
            "PATH": "/usr/bin:/bin"}


def systemctl(env, *args):
    return subprocess.run([sys.executable, str(HERE / "bin" / "systemctl"), *args], env=env, capture_output=True,
                          text=True, check=False)


def docker(env, *args):
    return subprocess.run([sys.executable, str(HERE / "bin" / "docker"), *args], env=env, capture_output=True,
                          text=True, check=False)


def test_show_has_what_systemd_service_reads(env):
    out = dict(line.split("=", 1) for line in systemctl(env, "show", "docker").stdout.splitlines())
    assert (out["LoadState"], out["ActiveState"], out["SubState"], out["UnitFileState"]) == (
        "loaded", "active", "running", "enabled")
    missing = dict(line.split("=", 1) for line in systemctl(env, "show", "nosuch.service").stdout.splitlines())
    assert missing["LoadState"] == "not-found"


def test_restart_is_logged_and_rereads_daemon_json(env, tmp_path):
    assert "nvidia" not in json.loads(docker(env, "info", "--format", "{{json .Runtimes}}").stdout)
    Path(env["LIBRA_TEST_DAEMON_JSON"]).write_text(json.dumps({"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}))
    assert systemctl(env, "daemon-reload").returncode == 0
    assert systemctl(env, "restart", "docker").returncode == 0
    assert "nvidia" in json.loads(docker(env, "info", "--format", "{{json .Runtimes}}").stdout)
    log = (tmp_path / "docker" / "systemctl.log").read_text().splitlines()
    assert [line.split(" ", 1)[1].strip() for line in log] == ["daemon-reload", "restart docker.service"]


def test_invalid_daemon_json_fails_the_restart(env):
    Path(env["LIBRA_TEST_DAEMON_JSON"]).write_text("{bad")
    res = systemctl(env, "restart", "docker")
    assert res.returncode == 1
    assert "Job for docker.service failed" in res.stderr
    assert systemctl(env, "is-active", "docker").stdout.strip() == "failed"
    assert "Cannot connect to the Docker daemon" in docker(env, "ps").stderr
