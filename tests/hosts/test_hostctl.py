"""hostctl builds chroot hosts and never leaves mounts or processes behind.

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


def test_up_is_idempotent_and_installs_the_doubles(state):
    root = hostctl.up("h1", "rtx3060-12gb")
    mounts = hostctl.mounts_under(root)
    assert set(mounts) == {str(root / p) for p in ("proc", "sys", "dev/pts", "dev", "run")} | {str(root)}
    assert hostctl.up("h1", "rtx3060-12gb") == root
    assert hostctl.mounts_under(root) == mounts
    assert (root / "etc/libra-test/gpu").read_text().strip() == "rtx3060-12gb"
    res = chroot(root, "nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits")
    assert res.stdout.strip() == "NVIDIA GeForce RTX 3060, 12288"
    assert chroot(root, "docker", "compose", "version", "--format", "json").stdout.strip() == '{"version": "v2.27.1"}'
    assert chroot(root, "systemctl", "is-active", "docker").stdout.strip() == "active"
    assert not (root / "etc/apt/sources.list").exists(), "Debian sources are off by default"


def test_no_gpu_host_and_switching_back(state):
    root = hostctl.up("h2", None)
    assert not (root / "usr/local/bin/nvidia-smi").exists()
    assert not (root / "etc/libra-test/gpu").exists()
    assert chroot(root, "sh", "-c", "command -v nvidia-smi").returncode != 0
    hostctl.up("h2", "t4-16gb")
    assert chroot(root, "nvidia-smi", "-L").stdout.startswith("GPU 0: Tesla T4")


def test_unknown_recording_is_refused(state):
    with pytest.raises(SystemExit, match="no GPU recording 'gtx-9999'"):
        hostctl.up("h3", "gtx-9999")


def test_down_kills_host_processes_and_unmounts(state):
    root = hostctl.up("h4")
    proc = subprocess.Popen(["chroot", str(root), "sleep", "300"], start_new_session=True)
    time.sleep(0.3)
    hostctl.down("h4")
    assert proc.wait(timeout=10) != 0
    assert hostctl.mounts_under(state) == []
    assert not (state / "h4").exists()
    hostctl.down("h4")  # a second down (destroy after a failed create) is harmless


def test_hosts_are_isolated_from_each_other_and_the_base(state):
    a = hostctl.up("ha")
    b = hostctl.up("hb")
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
