"""The systemctl stand-in: what ansible.builtin.systemd_service reads, without an engine.

ansible-core's systemd_service module runs `systemctl show UNIT` and parses key=value lines
(LoadState, ActiveState, ...). The stand-in's real work, starting, stopping and restarting the
host's dockerd by its pid file, is tested on real test hosts in tests/hosts/test_hostctl.py
(test_engine_per_host_own_namespace_and_restart) and by every scenario whose toolkit merge
restarts Docker.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def env(tmp_path):
    return {"LIBRA_TEST_DOCKER_DIR": str(tmp_path / "docker"), "LIBRA_TEST_DOCKER_PIDFILE": str(tmp_path / "docker.pid"),
            "LIBRA_TEST_DOCKER_SOCKET": str(tmp_path / "docker.sock"), "LIBRA_TEST_DOCKERD_FLAGS": str(tmp_path / "none.json"),
            "PATH": "/usr/bin:/bin"}


def systemctl(env, *args):
    return subprocess.run([sys.executable, str(HERE / "bin" / "systemctl"), *args], env=env, capture_output=True,
                          text=True, check=False)


def test_show_has_what_systemd_service_reads(env):
    out = dict(line.split("=", 1) for line in systemctl(env, "show", "docker").stdout.splitlines())
    assert (out["LoadState"], out["ActiveState"], out["SubState"], out["UnitFileState"], out["MainPID"]) == (
        "loaded", "inactive", "dead", "enabled", "0")
    missing = dict(line.split("=", 1) for line in systemctl(env, "show", "nosuch.service").stdout.splitlines())
    assert missing["LoadState"] == "not-found"


def test_a_pid_file_of_another_program_is_not_dockerd(env, tmp_path):
    (tmp_path / "docker.pid").write_text(f"{1}\n")  # pid 1 is not a dockerd here
    assert systemctl(env, "is-active", "docker").stdout.strip() == "inactive"


def test_start_without_flags_file_fails_like_a_failed_unit(env):
    res = systemctl(env, "start", "docker")
    assert res.returncode != 0
    assert systemctl(env, "is-active", "docker").returncode == 3


def test_enable_disable_and_reload_are_logged(env, tmp_path):
    assert systemctl(env, "disable", "docker").returncode == 0
    assert systemctl(env, "is-enabled", "docker").stdout.strip() == "disabled"
    assert systemctl(env, "daemon-reload").returncode == 0
    log = (tmp_path / "docker" / "systemctl.log").read_text().splitlines()
    assert [line.split(" ", 1)[1].strip() for line in log] == ["disable docker.service", "daemon-reload"]
