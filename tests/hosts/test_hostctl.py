"""hostctl builds chroot hosts with their own network namespace and Docker Engine, and never
leaves mounts, namespaces or processes behind.

Needs root and overlayfs (skipped otherwise, with the reason); uses the cached base rootfs
(built once by debootstrap when the cache is empty) and a temporary state directory.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import hostctl  # noqa: E402  (the module under test lives beside this file)


def _why_not():
    if os.geteuid() != 0:
        return "needs root (mount, chroot)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "no overlayfs in this kernel"
    if not any(hostctl.cache_dir().glob("base-*/.libra-base-ok")) and not Path("/usr/sbin/debootstrap").exists():
        return "no cached base and no debootstrap"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LIBRA_TEST_STATE", str(tmp_path / "hosts"))
    yield tmp_path / "hosts"
    for name in hostctl.all_names():
        hostctl.down(name)
    assert hostctl.mounts_under(tmp_path) == []


def chroot(root, *cmd):
    return subprocess.run(["chroot", str(root), *cmd], capture_output=True, text=True, timeout=60, check=False)


def in_host(name, *cmd):
    return hostctl.in_host(name, list(cmd), capture_output=True, text=True, timeout=120, check=False)


def test_up_is_idempotent_and_installs_the_doubles(state):
    root = hostctl.up("h1", "rtx3060-12gb", engine=False)
    mounts = hostctl.mounts_under(root)
    expected = {str(root / p) for p in ("proc", "sys", "dev/pts", "dev", "run", "var/lib/docker", hostctl.COMPOSE_PLUGIN)}
    assert expected | {str(root)} <= set(mounts)
    assert all(m.startswith(str(root / "sys/fs/cgroup")) for m in set(mounts) - expected - {str(root)})
    assert hostctl.up("h1", "rtx3060-12gb", engine=False) == root
    assert hostctl.mounts_under(root) == mounts
    assert (root / "etc/libra-test/gpu").read_text().strip() == "rtx3060-12gb"
    res = chroot(root, "nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits")
    assert res.stdout.strip() == "NVIDIA GeForce RTX 3060, 12288"
    # the real Compose v2 plugin (tests/deps/step_docker.py) under the Debian docker CLI
    assert chroot(root, "docker", "compose", "version", "--short").stdout.strip() == "2.40.3"
    assert chroot(root, "systemctl", "is-active", "docker").stdout.strip() == "inactive"
    assert not (root / "etc/apt/sources.list").exists(), "Debian sources are off by default"


def test_engine_per_host_own_namespace_and_restart(state):
    """Two hosts, each its own dockerd; the same port on both; systemctl restarts the real engine."""
    hostctl.up("e1", "rtx3060-12gb")
    hostctl.up("e2", None)
    assert hostctl.netns_name("e1") != hostctl.netns_name("e2")
    ids = {name: in_host(name, "docker", "info", "--format", "{{.ID}}").stdout.strip() for name in ("e1", "e2")}
    assert all(ids.values()) and ids["e1"] != ids["e2"], ids
    for name in ("e1", "e2"):
        images = in_host(name, "docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        assert "libra-test/vllm-standin:test" in images, images
        # no default bridge (dockerd --bridge=none): containers join a user network, as Compose's
        assert in_host(name, "docker", "network", "create", "web").returncode == 0
        run = in_host(name, "docker", "run", "-d", "--name", "web", "--network", "web", "-p", "127.0.0.1:18000:8000",
                      "libra-test/vllm-standin:test", "--model", f"model-{name}", "--port", "8000", "--host", "0.0.0.0")
        assert run.returncode == 0, run.stderr
    probe = ("import urllib.request,time\nend = time.time() + 90\nwhile time.time() < end:\n try:\n"
             "  print(urllib.request.urlopen('http://127.0.0.1:18000/v1/models').read().decode()); break\n"
             " except Exception: time.sleep(0.2)")
    assert "model-e1" in in_host("e1", "python3", "-c", probe).stdout
    assert "model-e2" in in_host("e2", "python3", "-c", probe).stdout
    # nothing of it on the controller's loopback
    assert subprocess.run(["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 18000), 1)"],
                          capture_output=True, check=False).returncode != 0
    pid_before = (hostctl.host_root("e1") / "run/docker.pid").read_text().strip()
    assert in_host("e1", "systemctl", "restart", "docker").returncode == 0
    pid_after = (hostctl.host_root("e1") / "run/docker.pid").read_text().strip()
    assert pid_after != pid_before
    assert in_host("e1", "systemctl", "show", "docker", "--property=MainPID", "--value").stdout.strip() == pid_after
    assert in_host("e1", "docker", "info", "--format", "{{.ID}}").stdout.strip() == ids["e1"]
    log = (hostctl.host_root("e1") / "var/lib/libra-test-docker/systemctl.log").read_text().split()
    assert "restart" in log


def test_no_gpu_host_and_switching_back(state):
    root = hostctl.up("h2", None, engine=False)
    assert not (root / "usr/local/bin/nvidia-smi").exists()
    assert not (root / "etc/libra-test/gpu").exists()
    assert chroot(root, "sh", "-c", "command -v nvidia-smi").returncode != 0
    hostctl.up("h2", "t4-16gb", engine=False)
    assert chroot(root, "nvidia-smi", "-L").stdout.startswith("GPU 0: Tesla T4")


def test_up_many_brings_up_hosts_of_different_kinds(state):
    # Molecule's platform fields as create.yml passes them: other keys are ignored, gpu "none"
    roots = hostctl.up_many([{"name": "m1", "gpu": "t4-16gb", "engine": False, "groups": ["vllm_hosts"]},
                             {"name": "m2", "gpu": "none", "engine": False}])
    assert list(roots) == ["m1", "m2"]
    assert (roots["m1"] / "etc/libra-test/gpu").read_text().strip() == "t4-16gb"
    assert chroot(roots["m2"], "sh", "-c", "command -v nvidia-smi").returncode != 0
    assert {h["name"]: h["gpu"] for h in hostctl.list_hosts()} == {"m1": "t4-16gb", "m2": None}


def test_unknown_recording_is_refused(state):
    with pytest.raises(SystemExit, match="no GPU recording 'gtx-9999'"):
        hostctl.up("h3", "gtx-9999", engine=False)


def test_down_kills_host_processes_and_unmounts(state):
    root = hostctl.up("h4")
    ns = hostctl.netns_name("h4")
    proc = subprocess.Popen(["chroot", str(root), "sleep", "300"], start_new_session=True)
    run = in_host("h4", "docker", "run", "-d", "--network", "none", "libra-test/worker-standin:test")
    assert run.returncode == 0, run.stderr
    time.sleep(0.3)
    hostctl.down("h4")
    assert proc.wait(timeout=10) != 0
    assert hostctl.mounts_under(state) == []
    assert not (state / "h4").exists()
    assert not Path(f"/run/netns/{ns}").exists()
    assert subprocess.run(["pgrep", "-f", f"data-root.*{state}"], capture_output=True, check=False).returncode != 0
    hostctl.down("h4")  # a second down (destroy after a failed create) is harmless


def test_hosts_are_isolated_from_each_other_and_the_base(state):
    a = hostctl.up("ha", engine=False)
    b = hostctl.up("hb", engine=False)
    (a / "root/marker").write_text("a")
    assert not (b / "root/marker").exists()
    assert not (hostctl.base_root() / "root/marker").exists()
    names = {h["name"] for h in hostctl.list_hosts()}
    assert names == {"ha", "hb"}


def test_prune_keeps_the_current_base(state):
    current = hostctl.build_base()
    stale = hostctl.cache_dir() / "base-bookworm-000000000000"
    (stale / "etc").mkdir(parents=True)
    try:
        assert stale in hostctl.prune()
        assert not stale.exists()
        assert (current / ".libra-base-ok").exists()
    finally:
        if stale.exists():
            shutil.rmtree(stale)
