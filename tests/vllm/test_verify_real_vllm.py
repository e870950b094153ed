"""The verify role's HTTP checks against a real vLLM OpenAI server (CPU build, tiny model).

roles/vllm_verify runs whole, through a real ``ansible-playbook`` on localhost, against the
``real_vllm_server`` fixture with the API key off and on, and once with a wrong key, which must
fail the role on /v1/models and /v1/chat/completions while /health (which vLLM serves without
the key) still answers 200. The assertions read the recorded ``vllm_verify_results``.

There is no GPU here: the role's GPU reads go to the nvidia-smi double (tests/doubles/bin,
replaying the RTX 4090 recording), and the one vLLM process it reports is the real server's
PID, with the memory the double derives from the instance's gpu_memory_utilization (the double's
a stand-in listing the server process). The toolkit smoke test is off (``vllm_verify_smoke_test: false``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vllmkit import DOUBLES, REPO, VENV_BIN

KEY = "sk-libra-real-vllm-3c9e"
RECORDING = "rtx4090-24gb"
UTILIZATION = 0.1

PLAYBOOK = [{
    "name": "Verify a real vLLM server",
    "hosts": "vllm_hosts",
    "gather_facts": False,
    "roles": [{"role": "vllm_verify"}],
}]


def run_verify(tmp_path: Path, server: dict, api_key: str) -> dict:
    """Run the role; return {rc, results (vllm_verify_results or None), stdout, stderr}."""
    rec = json.loads((DOUBLES / "recordings" / "nvidia-smi" / f"{RECORDING}.json").read_text())
    port = int(server["base_url"].rsplit(":", 1)[1])
    (tmp_path / "gpu").write_text(RECORDING + "\n")
    # No GPU here: the nvidia-smi double replays the recorded card, and lists GPU processes from a
    # Docker Engine, which this test has not. A stand-in in front of it adds the real server's
    # process the way a GPU host lists vLLM: the budget it allocates up front, utilization x total
    # (vllm-project/vllm#7553), on the recorded GPU's UUID.
    gpu = rec["gpus"][0]
    wrapper = tmp_path / "nvidia-smi"
    wrapper.write_text(
        "#!" + sys.executable + "\n"
        "import os, sys\n"
        "if any(a.startswith('--query-compute-apps') for a in sys.argv[1:]):\n"
        f"    print('{server['pid']}, python3, {int(UTILIZATION * gpu['memory_total_mib'])}, {gpu['uuid']}')\n"
        "    sys.exit(0)\n"
        f"os.execv({str(DOUBLES / 'bin' / 'nvidia-smi')!r}, [{str(DOUBLES / 'bin' / 'nvidia-smi')!r}] + sys.argv[1:])\n"
    )
    wrapper.chmod(0o755)
    variables = {
        "vllm_verify_tier": {
            "name": "real-vllm", "total_needs_gib": 1.0,
            "instances": [{"name": "tiny", "service": "vllm", "container_name": "libra-vllm", "port": port,
                           "served_model_name": server["served_model_name"], "gpu_memory_utilization": UTILIZATION,
                           "plan": {"cuda_graph_gib": 0}}],
        },
        "vllm_verify_gpu": {"index": 0},
        "vllm_verify_host": "127.0.0.1",
        "vllm_verify_api_key": api_key,
        "vllm_verify_stack_running": True,
        "vllm_verify_smoke_test": False,
        "vllm_verify_nvidia_smi": str(wrapper),
        "vllm_verify_engine": yaml.safe_load((REPO / "catalog" / "engine.yml").read_text()),
        # The replayed card's driver is what the GPU side reports; it is not under test here.
        "vllm_verify_min_driver": rec["driver_version"],
        # The tiny model on 2 CPU cores: a chat round trip takes well under a second, once warm.
        "vllm_verify_http_timeout": 60,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    os.chmod(tmp_path / "vars.json", 0o600)
    (tmp_path / "play.yml").write_text(yaml.safe_dump(PLAYBOOK))
    inventory = {"all": {"children": {"vllm_hosts": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ)
    env.update({
        "PATH": f"{DOUBLES / 'bin'}:{VENV_BIN}:{env.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_FILTER_PLUGINS": str(REPO / "filter_plugins"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "LIBRA_TEST_SHARE": str(DOUBLES),
        "LIBRA_TEST_GPU_FILE": str(tmp_path / "gpu"),
    })
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(tmp_path / "play.yml"), "-i", str(tmp_path / "hosts.yml"),
         "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"ansible-playbook printed no JSON (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = None
    for play in out["plays"]:
        for task in play["tasks"]:
            res = task["hosts"].get("localhost", {})
            if "vllm_verify_results" in res.get("ansible_facts", {}):
                results = res["ansible_facts"]["vllm_verify_results"]
    return {"rc": proc.returncode, "results": results, "stdout": proc.stdout, "stderr": proc.stderr}


def _checks(results: dict) -> dict:
    return {c["name"]: c for c in results["checks"]}


@pytest.fixture
def need_tools():
    if (VENV_BIN / "ansible-playbook").exists() is False:
        pytest.skip("ansible-playbook is not installed next to this Python (run through make test)")


@pytest.mark.parametrize("real_vllm_server", [None, KEY], ids=["no-key", "api-key"], indirect=True)
def test_verify_passes_against_real_vllm(real_vllm_server, tmp_path, need_tools):
    key = real_vllm_server["api_key"] or ""
    run = run_verify(tmp_path, real_vllm_server, key)
    res = run["results"]
    assert res is not None, run["stdout"][-3000:]
    checks = _checks(res)
    for name in ("health_tiny", "models_tiny", "chat_tiny"):
        assert checks[name]["ok"], checks[name]
    assert checks["gpu_process_tiny"]["ok"], checks["gpu_process_tiny"]
    assert res["passed"] is True and run["rc"] == 0, [c for c in res["checks"] if not c["ok"]]
    (inst,) = res["instances"]
    assert inst["health_status"] == 200 and inst["chat_status"] == 200
    assert inst["served_models"] == [real_vllm_server["served_model_name"]]
    # vllm_verify_chat_max_tokens is 8: a random-weight model never stops early on its own EOS
    # reliably, but it cannot produce more than the cap.
    assert 1 <= inst["completion_tokens"] <= 8
    if key:
        assert key not in run["stdout"] + run["stderr"], "the API key was printed"


@pytest.mark.parametrize("real_vllm_server", [KEY], ids=["api-key"], indirect=True)
def test_verify_fails_with_a_wrong_key(real_vllm_server, tmp_path, need_tools):
    run = run_verify(tmp_path, real_vllm_server, "sk-wrong-key")
    res = run["results"]
    assert res is not None, run["stdout"][-3000:]
    checks = _checks(res)
    assert checks["health_tiny"]["ok"], "vLLM serves /health without the key"
    assert not checks["models_tiny"]["ok"] and ": 401," in checks["models_tiny"]["detail"], checks["models_tiny"]
    assert not checks["chat_tiny"]["ok"] and checks["chat_tiny"]["detail"].startswith("POST /v1/chat/completions: 401"), \
        checks["chat_tiny"]
    assert res["passed"] is False and run["rc"] != 0
