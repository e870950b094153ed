"""playbooks/plan.yml through real Ansible, with no GPU: the budget table and a verdict for
every tier on an 8 GB RTX 2070, a 12 GB RTX 3060 and a 24 GB RTX 4090 (GPU presets).

One ansible-playbook run over three local hosts, one per card; the verdicts printed must be the
ones the planner gives in-process for the same card.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from libra_planner.tiers import gpu_from_preset, resolve_tier, tier_names, load_tier_catalog

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLAYBOOK = shutil.which("ansible-playbook", path=BIN) or shutil.which("ansible-playbook")
CARDS = {"rtx2070": "NVIDIA GeForce RTX 2070", "rtx3060": "NVIDIA GeForce RTX 3060", "rtx4090": "NVIDIA GeForce RTX 4090"}
COLUMNS = ["instance", "model", "util", "weights", "activations", "compile", "overhead", "KV-cache", "KV-tokens", "full-length", "max_num_seqs", "headroom", "verdict"]
UNITS = ["share", "GiB", "GiB", "GiB", "GiB", "GiB", "tokens", "requests", "requests", "GiB"]


def run_playbook(args, tmp_path, inventory: dict, callback: str | None = None):
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    if callback:
        env["ANSIBLE_STDOUT_CALLBACK"] = callback
    return subprocess.run([PLAYBOOK, "-i", str(inv), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def local_hosts(hosts: dict) -> dict:
    return {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}, "children": {"vllm_hosts": {"hosts": hosts}}}}


@pytest.fixture(scope="module")
def plan_output(tmp_path_factory):
    if PLAYBOOK is None:
        pytest.skip("ansible-playbook is not installed")
    tmp = tmp_path_factory.mktemp("plan")
    hosts = {f"gpu-{preset}": {"gpu_facts_preset": preset} for preset in CARDS}
    result = run_playbook(["playbooks/plan.yml", "-e", "tier=all"], tmp, local_hosts(hosts))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


def _host_block(output: str, host: str) -> str:
    """The budget-table message printed for one host."""
    match = re.search(rf"ok: \[{re.escape(host)}\] => \n\s+msg: \|-\n(.*?)(?=\nok: \[|\n\nTASK|\n\nPLAY)", output, re.S)
    assert match, f"no budget table for {host}"
    return match.group(1)


@pytest.mark.parametrize("preset", list(CARDS))
def test_table_and_verdict_for_every_tier(plan_output, preset):
    block = _host_block(plan_output, f"gpu-{preset}")
    assert f"GPU source: preset {preset}" in block
    catalog = load_tier_catalog()
    gpu = gpu_from_preset(preset)
    for tier in tier_names(catalog):
        expected = resolve_tier(catalog, tier, gpu)
        verdict = "FITS" if expected["fits"] else "DOES NOT FIT"
        heading = re.search(rf"== tier {tier} on {re.escape(CARDS[preset])} \([0-9.]+ GiB, compute capability [0-9.]+\): (FITS|DOES NOT FIT)", block)
        assert heading, f"no table for tier {tier} on {preset}"
        assert heading.group(1) == verdict
        # one row per instance, with numbers in every column
        section = block[heading.end():].split("== tier", 1)[0]
        section_lines = section.splitlines()
        header = [i for i, line in enumerate(section_lines) if line.strip().startswith("instance")]
        assert header and section_lines[header[0]].split() == COLUMNS
        assert section_lines[header[0] + 1].split() == UNITS
        for inst in expected["instances"]:
            row = re.search(rf"^\s*{inst['name']}\s+{re.escape(inst['model'])}\s+(.*)$", section, re.M)
            assert row, f"no row for {inst['name']} in {tier} on {preset}"
            cells = row.group(1).split()
            assert len(cells) == len(COLUMNS) - 2
            assert float(cells[0]) == pytest.approx(inst["gpu_memory_utilization"], abs=0.005)
            assert float(cells[1]) == pytest.approx(inst["plan"]["weights_gib"], abs=0.005)
            assert float(cells[3]) == pytest.approx(inst["plan"]["cold_compile_gib"], abs=0.005)
            assert int(cells[6]) == inst["plan"]["kv_cache_tokens"]
            # both named: what the KV cache holds in full-length requests, what the server admits
            assert float(cells[7]) == pytest.approx(inst["plan"]["kv_cache_tokens"] / inst["max_model_len"], abs=0.006)
            assert int(cells[8]) == inst["max_num_seqs"]
            assert cells[-1] in ("fits", "no")
        assert re.search(r"needs [0-9.]+ GiB; the card has [0-9.]+ GiB", section)
        if not expected["fits"]:
            assert "needs" in section and "has" in section  # the reasons are printed under the table


def test_verdict_lines(plan_output):
    found = dict(re.findall(r"ok: \[gpu-(\w+)\] => \n\s+msg: 'verdicts: ([^']*)'", plan_output))
    assert set(found) == set(CARDS)
    catalog = load_tier_catalog()
    for preset, line in found.items():
        expected = " ".join(f"{t}={'fits' if resolve_tier(catalog, t, gpu_from_preset(preset))['fits'] else 'does-not-fit'}" for t in tier_names(catalog))
        assert line == expected
    # the requirements' picture: the 3B + 7B pair does not fit 8 GB, it does fit 24 GB
    assert "dual=does-not-fit" in found["rtx2070"]
    assert "dual=fits" in found["rtx4090"]
    assert "changed=0" in plan_output and "failed=0" in plan_output
