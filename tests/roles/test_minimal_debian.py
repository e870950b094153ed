"""A minimal Debian 12 host (debootstrap minbase + what Ansible needs, then procps removed, so
no sysctl and no /etc/sysctl.d) converges tier=single: preflight, memory and stack stages of
site.yml (the toolkit stage is left out: it needs NVIDIA's apt repository), then a second run
changes nothing. The host is a chroot from tests/hosts/hostctl.py under its own state folder
(LIBRA_TEST_STATE=/var/lib/libra-tests/hosts-roles); vllm_stack_start=false and
host_memory_swap_activate=false keep Docker and the machine's kernel out of it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "hosts"))
sys.path.insert(0, str(REPO / "tests" / "playbooks"))

from playkit import local_inventory, run_playbook  # noqa: E402

NAME = "roles-minimal"
STATE = "/var/lib/libra-tests/hosts-roles"


def _recap(out: str) -> dict:
    m = re.search(r"^minimal\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out, re.M)
    assert m, out[-2000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups())))


@pytest.fixture(scope="module")
def host():
    if os.geteuid() != 0:
        pytest.skip("chroot test hosts need root")
    os.environ["LIBRA_TEST_STATE"] = STATE
    import hostctl

    root = hostctl.up(NAME, gpu="rtx3060-12gb")
    # minbase + procps is hostctl's base; a minimal Debian has no procps: no sysctl, no /etc/sysctl.d
    subprocess.run(["chroot", str(root), "dpkg", "--purge", "--force-depends", "procps"], check=True, capture_output=True)
    subprocess.run(["rm", "-rf", str(root / "etc" / "sysctl.d")], check=True)
    assert not (root / "usr" / "sbin" / "sysctl").exists() and not (root / "etc" / "sysctl.d").exists()
    yield root
    hostctl.down(NAME)


def _inventory(tmp_path: Path, root: Path, **extra) -> Path:
    hv = {"ansible_connection": "community.general.chroot", "ansible_host": str(root), "ansible_python_interpreter": "/usr/bin/python3",
          "tier": "single", "vllm_stack_start": False, "vllm_stack_validate_with_docker": False,
          "host_memory_swap_activate": False, "host_memory_swap_mib": 16, "preflight_show_summary": False, **extra}
    inv = local_inventory(tmp_path / "hosts.yml", {"minimal": {}})
    text = inv.read_text()
    import yaml

    doc = yaml.safe_load(text)
    doc["all"]["children"]["vllm_hosts"]["hosts"]["minimal"] = hv
    inv.write_text(yaml.safe_dump(doc))
    return inv


def test_minimal_debian_converges_single_and_stays_converged(host, tmp_path):
    inv = _inventory(tmp_path, host)
    first = run_playbook("site.yml", inv, "--skip-tags", "toolkit")
    assert first.rc == 0, first.out[-4000:]
    assert (host / "etc" / "sysctl.d" / "60-libra-swap.conf").read_text().strip().endswith("vm.swappiness = 10")
    assert (host / "libra.swap").stat().st_size == 16 * 1048576
    assert re.search(r"(?m)^/libra\.swap\s+none\s+swap\s+sw\s", (host / "etc" / "fstab").read_text())
    assert (host / "opt" / "libra" / "docker-compose.vllm-lite.yml").exists()
    second = run_playbook("site.yml", inv, "--skip-tags", "toolkit")
    assert second.rc == 0, second.out[-4000:]
    assert _recap(second.out)["changed"] == 0, second.out[-4000:]


def test_swap_activation_without_sysctl_stops_before_any_change(host, tmp_path):
    inv = _inventory(tmp_path, host, host_memory_swap_activate=True, host_memory_swap_file="/libra-activate.swap",
                     host_memory_sysctl_file="/etc/sysctl.d/61-libra-activate.conf")
    run = run_playbook("site.yml", inv, "--tags", "memory")
    assert run.rc != 0
    assert "host_memory needs" in run.out and "sysctl" in run.out and "procps" in run.out, run.out[-3000:]
    assert not (host / "libra-activate.swap").exists()
    assert "libra-activate" not in (host / "etc" / "fstab").read_text()
    assert not (host / "etc" / "sysctl.d" / "61-libra-activate.conf").exists()
