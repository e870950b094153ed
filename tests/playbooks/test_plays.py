"""site.yml and rollout.yml as an operator runs them: which hosts each play targets, and what is
refused in preflight before anything changes. Local-connection hosts, GPU from a preset or from
the nvidia-smi double (tests/doubles/bin/nvidia-smi); nothing calls Docker.

Each test below was first run on the code before the fix and failed there (README, "Tests").
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from playkit import DOUBLES, REPO, local_inventory, run_playbook

GPU_HOSTS = {"edge-2070-01", "edge-2070-02", "edge-3060-01", "edge-3060-02", "ws-4090-01", "dc-t4-01", "dc-a100-01", "dc-l4x2-01"}


def _plays(list_hosts_output: str) -> list[tuple[str, set[str]]]:
    """(play name, hosts) per play of ``ansible-playbook --list-hosts``."""
    plays = []
    for block in re.split(r"\n\s*play #\d+ ", list_hosts_output)[1:]:
        name = block.splitlines()[0]
        hosts = set(re.findall(r"^\s{6}(\S+)\s*$", block.split("hosts (", 1)[1], re.M)) if "hosts (" in block else set()
        plays.append((name, hosts))
    return plays


def test_site_on_the_example_fleet_targets_only_vllm_hosts():
    run = run_playbook("site.yml", REPO / "inventories" / "example-fleet", "--list-hosts")
    assert run.rc == 0, run.out[-2000:]
    plays = _plays(run.out)
    assert len(plays) == 6, plays  # the group check, preflight, toolkit, memory, stack, verify
    check, *stages = plays
    assert check[1] == {"localhost"}, check  # reads the inventory on the controller, touches no host
    for name, hosts in stages:
        assert hosts == GPU_HOSTS, (name, hosts)   # never lb-01


def test_rollout_on_the_example_fleet_targets_only_vllm_hosts():
    run = run_playbook("playbooks/rollout.yml", REPO / "inventories" / "example-fleet", "--list-hosts")
    assert run.rc == 0, run.out[-2000:]
    stage = [hosts for name, hosts in _plays(run.out) if name.startswith("(vllm_hosts)")]
    assert stage == [GPU_HOSTS]
    assert all("lb-01" not in hosts for _, hosts in _plays(run.out))


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/rollout.yml"])
def test_an_inventory_without_vllm_hosts_is_told_the_group(tmp_path, playbook):
    inv = local_inventory(tmp_path / "hosts.yml", {"gpu-01": {"tier": "single"}}, group=None)
    run = run_playbook(playbook, inv, "-e", f"rollout_report_dir={tmp_path / 'reports'}")
    assert run.rc != 0
    assert "No host in group vllm_hosts" in run.out, run.out[-3000:]
    assert "HostVarsVars" not in run.out


def _site(tmp_path: Path, env: dict | None = None, tags: str = "", **hostvars) -> tuple:
    """site.yml on one local host whose every path lies under tmp_path; returns (result, paths)."""
    paths = {"vllm_stack_dir": str(tmp_path / "stack"), "host_memory_swap_file": str(tmp_path / "libra.swap"),
             "host_memory_sysctl_file": str(tmp_path / "sysctl.d" / "60-libra-swap.conf"),
             "nvidia_toolkit_daemon_json": str(tmp_path / "docker" / "daemon.json"),
             "nvidia_toolkit_keyring": str(tmp_path / "keyrings" / "nvidia.asc"),
             "nvidia_toolkit_sources_file": str(tmp_path / "sources" / "nvidia.sources")}
    hv = {"tier": "single", "preflight_show_summary": False, "host_memory_swap_activate": False, **paths, **hostvars}
    inv = local_inventory(tmp_path / "hosts.yml", {"gpu-01": hv})
    args = ["--tags", tags] if tags else []
    return run_playbook("site.yml", inv, *args, env=env), paths


def _nothing_written(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.name not in ("hosts.yml", "gpu"))


@pytest.mark.parametrize("field,value", [
    # one path input of each role that writes files (every *_dir / *_file / path input has the
    # same rule, table-tested in tests/roles/test_libra_roles.py)
    ("vllm_stack_dir", "opt/libra"),
    ("host_memory_swap_file", "libra.swap"),
    ("nvidia_toolkit_daemon_json", "etc/docker/daemon.json"),
])
def test_relative_paths_are_refused_in_preflight_naming_the_field(tmp_path, field, value):
    run, _ = _site(tmp_path, gpu_facts_preset="rtx3060", vllm_stack_start=False, **{field: value})
    assert run.rc != 0
    assert f"{field} must be an absolute path (starting with /), got '{value}'" in run.out, run.out[-3000:]
    assert re.search(r"TASK \[\w+ : \w+ \| check the inputs\] \*+\n(?:.*\n)*?fatal: \[gpu-01\]", run.out)
    assert _nothing_written(tmp_path) == []
    assert not (REPO / value.split("/")[0]).exists()   # a relative path would land in the project


def test_a_quote_in_the_api_key_is_refused_in_preflight_before_any_change(tmp_path):
    key = "sk-it's-secret-7f1c"
    run, _ = _site(tmp_path, gpu_facts_preset="rtx3060", vllm_stack_start=False, vllm_stack_api_key=key)
    assert run.rc != 0
    assert "vllm_stack_api_key may not contain a single quote" in run.out, run.out[-3000:]
    assert "secret-7f1c" not in run.out
    # refused before the toolkit, swap file, fstab or sysctl.d stages wrote anything
    assert _nothing_written(tmp_path) == []


@pytest.mark.parametrize("gpu", [{"gpu_facts_preset": "rtx3060"},
                                 {"gpu_facts_memory_total_mib": 12288, "gpu_facts_compute_capability": "8.6"}])
def test_a_preset_gpu_is_refused_when_the_stack_is_to_be_started(tmp_path, gpu):
    run, _ = _site(tmp_path, **gpu)   # vllm_stack_start defaults to true
    assert run.rc != 0
    assert "refuse a GPU preset or explicit GPU memory when the stack is to be started" in run.out, run.out[-3000:]
    assert "gpu_facts_preset" in run.out and "playbooks/plan.yml" in run.out
    assert _nothing_written(tmp_path) == []


def test_verify_runs_the_configured_nvidia_smi(tmp_path, double_env):
    if shutil.which("nvidia-smi"):
        pytest.skip("an nvidia-smi on PATH would hide whether the configured one is used")
    smi = str(DOUBLES / "bin" / "nvidia-smi")
    run, _ = _site(tmp_path, env=double_env, tags="preflight,verify", gpu_facts_nvidia_smi=smi, vllm_stack_start=False)
    assert run.rc == 0, run.out[-3000:]
    assert re.search(r"TASK \[vllm_verify : Verify \| read the GPUs\] \*+\nok: \[gpu-01\]", run.out), run.out[-3000:]


def test_example_inventory_puts_every_gpu_host_in_vllm_hosts():
    doc = yaml.safe_load((REPO / "inventories" / "example-fleet" / "hosts.yml").read_text())
    local = yaml.safe_load((REPO / "inventories" / "local" / "hosts.yml").read_text())
    assert "localhost" in local["all"]["children"]["vllm_hosts"]["hosts"]
    assert "lb" in doc["all"]["children"] and "vllm_hosts" in doc["all"]["children"]
