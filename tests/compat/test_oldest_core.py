"""The oldest supported ansible-core (README, "Supported ansible-core") runs what the newest runs:
the planner filters through playbooks/plan.yml, a site.yml render of the stack files and a
rollout whose batch gate stops it (meta end_play, documented since 2.2). The venv comes from
tests/deps/step_ansible_core_oldest.py; .venv holds the newest and runs every other test.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "playbooks"))
sys.path.insert(0, str(REPO / "tests" / "deps"))

from playkit import local_inventory, run_playbook  # noqa: E402
from step_ansible_core_oldest import CACHE, VERSION  # noqa: E402

OLD_BIN = CACHE / "bin"
STUBS = REPO / "tests" / "fleet" / "stub_roles"


@pytest.fixture(scope="module", autouse=True)
def oldest():
    if not (CACHE / ".complete").exists():
        pytest.skip(f"ansible-core {VERSION} venv missing: run `make test-deps` (tests/deps/step_ansible_core_oldest.py)")
    out = subprocess.run([str(OLD_BIN / "ansible"), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"ansible [core {VERSION}]" in out, out


def test_plan_playbook_runs_the_planner_filters(tmp_path):
    inv = local_inventory(tmp_path / "hosts.yml", {"planner": {}})
    run = run_playbook("playbooks/plan.yml", inv, "-e", "tier=all", "-e", "gpu_facts_preset=rtx3060", bin_dir=OLD_BIN)
    assert run.rc == 0, run.out[-3000:]
    verdicts = re.search(r"verdicts: ([^\"\n]+)", run.out)
    assert verdicts, run.out[-3000:]
    got = dict(pair.split("=") for pair in verdicts.group(1).split())
    # the same verdicts the newest ansible-core gives for the same GPU
    new = run_playbook("playbooks/plan.yml", inv, "-e", "tier=all", "-e", "gpu_facts_preset=rtx3060")
    assert got == dict(pair.split("=") for pair in re.search(r"verdicts: ([^\"\n]+)", new.out).group(1).split())
    assert set(got) == {"dual", "single", "ultralight", "int2", "max"}


def test_site_renders_the_stack(tmp_path):
    stack = tmp_path / "stack"
    inv = local_inventory(tmp_path / "hosts.yml", {"gpu-01": {
        "tier": "single", "gpu_facts_preset": "rtx3060", "vllm_stack_start": False, "vllm_stack_validate_with_docker": False,
        "vllm_stack_dir": str(stack), "preflight_show_summary": False}})
    run = run_playbook("site.yml", inv, "--tags", "preflight,stack", bin_dir=OLD_BIN)
    assert run.rc == 0, run.out[-3000:]
    env = (stack / ".env").read_text()
    assert "VLLM_MODEL=" in env and "DTYPE=" in env
    assert (stack / "docker-compose.vllm-lite.yml").exists()


def test_rollout_gate_stops_at_the_failing_batch(tmp_path):
    state = tmp_path / "state"
    inv = local_inventory(tmp_path / "hosts.yml", {h: {} for h in ("h1", "h2", "h3")})
    reports = tmp_path / "reports"
    run = run_playbook(
        "playbooks/rollout.yml", inv, "-e", f"rollout_report_dir={reports}", "-e", "vllm_stack_start=false",
        "-e", f"vllm_stack_dir={state}/{{{{ inventory_hostname }}}}", "-e", "stub_config=v1",
        "-e", json.dumps({"rollout_serial": [1], "rollout_max_fail_percentage": 0,
                          "stub_unhealthy": "{{ inventory_hostname == 'h2' }}"}),
        env={"ANSIBLE_ROLES_PATH": str(STUBS)}, bin_dir=OLD_BIN)
    assert run.rc != 0
    report = json.loads((reports / "rollout.json").read_text())
    assert {r["host"]: r["result"] for r in report["hosts"]} == {"h1": "deployed", "h2": "failed", "h3": "skipped"}, run.out[-3000:]
    assert not (state / "h3").exists()
