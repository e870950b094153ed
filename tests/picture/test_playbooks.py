"""The plan picture written by the playbooks, through real Ansible on local hosts with GPU presets:
plan.yml writes one SVG per host and tier under plan_picture_dir, preflight writes plan-<host>.svg
under preflight_picture_dir on the controller, also when it then stops because the plan does not fit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLAYBOOK = shutil.which("ansible-playbook", path=BIN) or shutil.which("ansible-playbook")
NS = "{http://www.w3.org/2000/svg}"


def run(args, tmp, hosts):
    inv = tmp / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}, "children": {"vllm_hosts": {"hosts": hosts}}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run([PLAYBOOK, "-i", str(inv), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def overflow_rects(path):
    root = ET.parse(path).getroot()
    return root, [el for el in root.iter(f"{NS}rect") if "overflow" in (el.get("class") or "").split()]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    if PLAYBOOK is None:
        pytest.skip("ansible-playbook is not installed")
    return tmp_path_factory.mktemp("pictures")


def test_plan_playbook_writes_one_svg_per_host_and_tier(tmp):
    out = tmp / "plan"
    hosts = {"card-8gb": {"gpu_facts_preset": "rtx2070"}, "card-80gb": {"gpu_facts_preset": "a100-80gb"}}
    result = run(["playbooks/plan.yml", "-e", "tier=dual", "-e", f"plan_picture_dir={out}"], tmp, hosts)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["plan-card-80gb-dual.svg", "plan-card-8gb-dual.svg"]
    root, red = overflow_rects(out / "plan-card-8gb-dual.svg")
    assert "RTX 2070" in root.find(f"{NS}title").text and red
    root, red = overflow_rects(out / "plan-card-80gb-dual.svg")
    assert "A100" in root.find(f"{NS}title").text and not red
    assert len([el for el in root.iter(f"{NS}line") if el.get("class") == "budget"]) == 2


def test_preflight_writes_the_picture_before_it_stops(tmp):
    out = tmp / "preflight"
    # a preset GPU is for plans only: preflight refuses it for a stack that is to be started
    hosts = {"small": {"tier": "dual", "gpu_facts_preset": "rtx2070", "vllm_stack_start": False},
             "fine": {"tier": "single", "gpu_facts_preset": "rtx2070", "vllm_stack_start": False}}
    result = run(["playbooks/preflight.yml", "--check", "-e", f"preflight_picture_dir={out}"], tmp, hosts)
    assert result.returncode != 0  # dual does not fit the 8 GB card
    assert "does not fit" in result.stdout
    assert sorted(os.listdir(out)) == ["plan-fine.svg", "plan-small.svg"]
    assert overflow_rects(out / "plan-small.svg")[1]
    assert not overflow_rects(out / "plan-fine.svg")[1]
    assert "changed=0" in result.stdout.split("PLAY RECAP")[1]
