"""The operator's first mistakes through real ansible-playbook on localhost: a bad tier and no GPU.

A bad tier stops in one short message naming the field and the valid tiers, before the GPU is
read and without the role's argument spec printed (plan.yml and site.yml --tags preflight). No
GPU stops naming the command that plans without one and every GPU preset of catalog/gpus.yml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLAYBOOK = shutil.which("ansible-playbook", path=BIN) or shutil.which("ansible-playbook")
with open(os.path.join(ROOT, "catalog", "tiers.yml"), encoding="utf-8") as fh:
    TIERS = list(yaml.safe_load(fh)["tiers"])
with open(os.path.join(ROOT, "catalog", "gpus.yml"), encoding="utf-8") as fh:
    PRESETS = list(yaml.safe_load(fh)["gpus"])
# Ansible's own lines around a failed task (banner, origin, recap) are about a dozen.
SHORT = 25


def _run(args, tmp_path):
    if PLAYBOOK is None:
        pytest.skip("ansible-playbook is not installed")
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}, "children": {"vllm_hosts": {"hosts": {"box": {}}}}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    result = subprocess.run([PLAYBOOK, "-i", str(inv), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("args", [
    ["playbooks/plan.yml", "-e", "tier=bogus", "-e", "gpu_facts_preset=rtx2070"],
    ["site.yml", "--tags", "preflight", "-e", "tier=bogus", "-e", "gpu_facts_preset=rtx2070"],
], ids=["plan.yml", "site.yml-preflight"])
def test_bad_tier_is_one_short_message(args, tmp_path):
    rc, out = _run(args, tmp_path)
    assert rc != 0
    assert "argument_spec_data" not in out and "caused by" not in out
    assert len([line for line in out.splitlines() if line.strip()]) <= SHORT, out
    msg = next(line for line in out.splitlines() if "is not a tier" in line)
    assert "tier: " in msg and "bogus" in msg and "valid tiers: " in msg
    for name in TIERS + ["auto"]:
        assert name in msg.split("valid tiers: ", 1)[1], (name, msg)
    # stopped before the GPU was read
    assert "gpu_facts" not in out and "Gpu facts" not in out


def test_no_gpu_names_the_command_and_the_presets(tmp_path):
    rc, out = _run(["playbooks/plan.yml", "-e", "tier=dual", "-e", "gpu_facts_nvidia_smi=/nonexistent/nvidia-smi"], tmp_path)
    assert rc != 0
    flat = " ".join(out.split())
    assert "has no usable NVIDIA GPU" in flat
    assert 'make plan TIER=<tier> ARGS="-e gpu_facts_preset=<name>"' in flat
    assert len(PRESETS) >= 5
    listed = flat.split("with <name> one of", 1)[1]
    for preset in PRESETS:
        assert preset in listed, preset
