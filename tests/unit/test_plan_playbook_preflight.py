"""playbooks/preflight.yml through real Ansible, against the nvidia-smi test double.

One run over seven local hosts, each with its own recorded GPU (tests/doubles/recordings, each
citing the GitHub issue its output comes from) or none, so the role's real nvidia-smi path runs:

* 24 GB RTX 4090, tier=auto            -> plans the dual stack, fact vllm_tier_resolved set
* 8 GB RTX 2070 with a running stack   -> tier=single still fits (memory held by vLLM counts as free)
* 8 GB RTX 2070, tier=dual             -> stops, saying the GiB it needs and has
* no driver, tier=single               -> stops, saying nvidia-smi cannot reach the driver
* tier=duel                            -> stops on validation, before nvidia-smi runs
* a typo'd override knob               -> stops naming the field and the closest knob
* GPU index 2 on a two-GPU host        -> stops naming the indexes it has
* 8 GB RTX 2070 on driver 510, tier=single, stack to be started
                                       -> stops: the pinned image's CUDA needs a newer driver
The 4090 (driver 535) and the re-run 2070 (driver 510) lower the driver floor or do not start the
stack, so their driver only warns or passes.
Run with --tags stack --check: the preflight tasks must still run (tagged always) and change nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLAYBOOK = shutil.which("ansible-playbook", path=BIN) or shutil.which("ansible-playbook")


def local_hosts(hosts: dict) -> dict:
    return {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}, "children": {"vllm_hosts": {"hosts": hosts}}}}


def run_playbook(args, tmp_path, inventory: dict, callback: str):
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK=callback, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run([PLAYBOOK, "-i", str(inv), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


DOUBLES = os.path.join(ROOT, "tests", "doubles")
DOUBLE = os.path.join(DOUBLES, "bin", "nvidia-smi")


def _wrapper(tmp_path, name: str, recording: str | None, docker_state: dict | None = None) -> str:
    """An nvidia-smi for one host: the double with that host's recording (or none)."""
    gpu_file = tmp_path / f"{name}.gpu"
    if recording:
        gpu_file.write_text(recording + "\n")
    state = tmp_path / f"{name}.state.json"
    state.write_text(json.dumps(docker_state or {}))
    script = tmp_path / f"{name}-nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f"LIBRA_TEST_SHARE='{DOUBLES}' LIBRA_TEST_GPU_FILE='{gpu_file}' LIBRA_TEST_DOCKER_STATE='{state}' "
        f"exec '{sys.executable}' '{DOUBLE}' \"$@\"\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.fixture(scope="module")
def preflight_run(tmp_path_factory):
    if PLAYBOOK is None or not os.path.exists(DOUBLE):
        pytest.skip("ansible-playbook or the nvidia-smi test double is missing")
    tmp = tmp_path_factory.mktemp("preflight")
    running = {"projects": {"libra": {"services": {"vllm": {"state": "running", "gpu": True, "gpu_memory_utilization": 0.85, "pid": 4242}}}}}
    hosts = {
        "big": {"tier": "auto", "vllm_verify_min_driver": "535.0", "gpu_facts_nvidia_smi": _wrapper(tmp, "big", "rtx4090-24gb")},
        "rerun": {"tier": "single", "vllm_stack_start": False, "gpu_facts_nvidia_smi": _wrapper(tmp, "rerun", "rtx2070-8gb", running)},
        "small": {"tier": "dual", "gpu_facts_nvidia_smi": _wrapper(tmp, "small", "rtx2070-8gb")},
        "nodriver": {"tier": "single", "gpu_facts_nvidia_smi": _wrapper(tmp, "nodriver", None)},
        "typo": {"tier": "duel", "gpu_facts_nvidia_smi": _wrapper(tmp, "typo", "rtx2070-8gb")},
        "knob": {"tier": "single", "vllm_tier_overrides": {"single": {"max_model_length": 1024}}, "gpu_facts_nvidia_smi": _wrapper(tmp, "knob", "rtx2070-8gb")},
        "olddriver": {"tier": "single", "gpu_facts_nvidia_smi": _wrapper(tmp, "olddriver", "rtx2070-8gb")},
        "multi": {"tier": "auto", "gpu_facts_index": 2, "gpu_facts_nvidia_smi": _wrapper(tmp, "multi", "multi-2080ti22gb-titanrtx")},
    }
    result = run_playbook(["playbooks/preflight.yml", "--tags", "stack", "--check"], tmp, local_hosts(hosts), callback="ansible.posix.json")
    assert result.stdout.lstrip().startswith("{"), result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout[result.stdout.index("{"):])


def _results(run, host):
    """(task name, result) for every task that ran on ``host``, in order."""
    out = []
    for play in run["plays"]:
        for task in play["tasks"]:
            if host in task["hosts"]:
                out.append((task["task"]["name"], task["hosts"][host]))
    return out


def _failure(run, host) -> str:
    failed = [(name, res) for name, res in _results(run, host) if res.get("failed")]
    assert len(failed) == 1, [name for name, _ in failed]
    return failed[0][0] + " :: " + str(failed[0][1].get("msg"))


def test_outcomes_per_host(preflight_run):
    # localhost ran only the controller's check that vllm_hosts has hosts (playbooks/hosts_check.yml)
    assert preflight_run["stats"]["localhost"]["failures"] == 0
    stats = {h: s for h, s in preflight_run["stats"].items() if h != "localhost"}
    assert {h: stats[h]["failures"] for h in stats} == {"big": 0, "rerun": 0, "small": 1, "nodriver": 1, "typo": 1, "knob": 1, "multi": 1, "olddriver": 1}
    # read-only: nothing changed anywhere, even with every probe run
    assert all(stats[h]["changed"] == 0 for h in stats)


def test_auto_on_24gb_plans_dual(preflight_run):
    facts = [res["ansible_facts"] for name, res in _results(preflight_run, "big") if "vllm_tier_resolved" in res.get("ansible_facts", {})]
    resolved = facts[0]["vllm_tier_resolved"]
    assert resolved["requested"] == "auto"
    assert resolved["name"] == "dual" and resolved["fits"]
    assert resolved["compose_file"] == "docker-compose.vllm.yml"
    assert [i["container_name"] for i in resolved["instances"]][0] == "libra-vllm"
    assert resolved["gpu"]["name"] == "NVIDIA GeForce RTX 4090"


def test_rerun_with_running_stack_still_fits(preflight_run):
    facts = [res["ansible_facts"] for name, res in _results(preflight_run, "rerun") if "vllm_tier_resolved" in res.get("ansible_facts", {})]
    assert facts and facts[0]["vllm_tier_resolved"]["fits"]


def test_too_small_gpu_stops_with_needs_and_has(preflight_run):
    message = _failure(preflight_run, "small")
    assert message.startswith("preflight : Preflight | stop when the plan does not fit the GPU ::")
    needs = re.search(r"needs ([0-9.]+) GiB of GPU memory; NVIDIA GeForce RTX 2070 has 8.00 GiB", message)
    assert needs and float(needs.group(1)) > 8.0
    assert "tiers that fit" in message


def test_no_driver_stops_saying_so(preflight_run):
    message = _failure(preflight_run, "nodriver")
    assert "has no usable NVIDIA GPU" in message
    assert "couldn't communicate with the NVIDIA driver" in message


def test_bad_tier_stops_before_the_gpu_is_read(preflight_run):
    message = _failure(preflight_run, "typo")
    # the role's argument spec refuses it first (schemas/inventory.schema.json would too)
    assert "duel" in message and ("one of" in message or "valid" in message)
    for name in ("dual", "single", "ultralight", "int2", "auto"):
        assert name in message
    ran = [name for name, _ in _results(preflight_run, "typo")]
    assert not any("query nvidia-smi" in name for name in ran)


def test_typod_knob_is_named(preflight_run):
    message = _failure(preflight_run, "knob")
    assert "vllm_tier_overrides.single.max_model_length" in message
    assert "did you mean 'max_model_len'" in message


def test_bad_gpu_index_names_the_valid_ones(preflight_run):
    message = _failure(preflight_run, "multi")
    assert "gpu_facts_index" in message and "[0, 1]" in message


def test_old_driver_stops_a_stack_that_would_start(preflight_run):
    message = _failure(preflight_run, "olddriver")
    assert "driver is too old" in message
    # the recording's driver and the engine catalog's minimum (the pinned release's -cu129 build,
    # CUDA 12.9: >= 575.51.03), both named
    assert "510.68.02" in message and "575.51.03" in message


def test_old_driver_only_warns_when_the_stack_does_not_start(preflight_run):
    warned = [res.get("msg", "") for name, res in _results(preflight_run, "rerun") if "warn when the driver is too old" in name and not res.get("skipped")]
    assert warned and "510.68.02" in warned[0]
