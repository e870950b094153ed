"""Stage tags mean the same in rollout.yml as in site.yml: --skip-tags toolkit leaves the toolkit
alone. The stand-in roles of tests/fleet/stub_roles, with a toolkit stand-in that leaves a mark.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from playkit import REPO, local_inventory, run_playbook

STUBS = REPO / "tests" / "fleet" / "stub_roles"


@pytest.fixture()
def rollout(tmp_path: Path):
    roles = tmp_path / "roles"
    shutil.copytree(STUBS, roles)
    (roles / "nvidia_toolkit" / "tasks" / "main.yml").write_text(
        "---\n- name: Stub toolkit | leave a mark\n  ansible.builtin.copy:\n"
        "    content: ran\n    dest: \"{{ vllm_stack_dir }}.toolkit\"\n    mode: \"0644\"\n")
    state = tmp_path / "state"
    state.mkdir()
    inv = local_inventory(tmp_path / "hosts.yml", {h: {} for h in ("h1", "h2")})
    common = ["-e", f"rollout_report_dir={tmp_path / 'reports'}", "-e", f"vllm_stack_dir={state}/{{{{ inventory_hostname }}}}",
              "-e", "vllm_stack_start=false", "-e", "stub_config=v1"]

    def run(*args: str):
        return run_playbook("playbooks/rollout.yml", inv, *common, *args, env={"ANSIBLE_ROLES_PATH": str(roles)})

    run.state = state
    return run


def test_rollout_honours_skip_tags_toolkit(rollout):
    skipped = rollout("--skip-tags", "toolkit")
    assert skipped.rc == 0, skipped.out[-3000:]
    assert sorted(p.name for p in rollout.state.iterdir()) == ["h1", "h2"]   # the stacks were deployed ...
    assert not list(rollout.state.glob("*.toolkit"))                         # ... the toolkit left alone


def test_rollout_runs_the_toolkit_by_default(rollout):
    run = rollout("-e", "rollout_force=true")
    assert run.rc == 0, run.out[-3000:]
    assert sorted(p.name for p in rollout.state.glob("*.toolkit")) == ["h1.toolkit", "h2.toolkit"]
