"""Every tier x several GPU recordings rendered through the real roles, then checked.

One ``ansible-playbook site.yml --tags preflight,stack`` run renders all cases at once: each case
is an inventory host (connection local) with its own ``vllm_stack_dir`` and
``vllm_stack_start=false``, so nothing calls Docker. Cases whose plan does not fit must stop in
preflight and leave their directory absent; the others must render a compose file that passes the
Compose spec (check-jsonschema's vendored ``compose-spec.json``) and carries the plan's values.

Expected values come from the planner itself (``libra_planner.tiers.resolve_tier``) on the same
GPU; the checks here are about the wiring from plan to files, plus facts independent of the
planner: Turing (compute capability 7.5) has no bfloat16 (NVIDIA CUDA programming guide, bf16
arithmetic needs compute capability >= 8.0), the dual file name and the service_healthy ordering.
"""
from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import yaml

from libra_planner import tiers as planner_tiers
from libra_planner.errors import PlannerError
# tests/conftest.py puts tests/vllm on sys.path; the shared render (rendered_stacks) uses these
from vllmkit import CHECKED_PRESETS as PRESETS
from vllmkit import MULTI, MULTI_CASES, TIERS
from vllmkit import RENDER_API_KEY as API_KEY
from vllmkit import RENDER_SECRET as SECRET
from vllmkit import RENDER_WORKER_IMAGE as WORKER_IMAGE
from vllmkit import parse_env_file as _parse_env

REPO = Path(__file__).resolve().parents[2]
DOUBLES = REPO / "tests" / "doubles"


def _cases() -> list[dict]:
    cases = []
    for gpu in PRESETS:
        for tier in TIERS:
            cases.append({"host": f"{tier}-{gpu}", "tier": tier, "preset": gpu})
    for tier, index in MULTI_CASES:
        cases.append({"host": f"{tier}-multi{index}", "tier": tier, "multi_index": index})
    return cases


CASES = _cases()


def _gpu_for(case: dict) -> dict:
    if "preset" in case:
        return planner_tiers.gpu_from_preset(case["preset"])
    rec = json.loads((DOUBLES / "recordings" / "nvidia-smi" / f"{MULTI}.json").read_text())
    g = rec["gpus"][case["multi_index"]]
    return {"index": g["index"], "name": g["name"], "uuid": g["uuid"], "memory_total_mib": g["memory_total_mib"],
            "compute_capability": g["compute_cap"]}


_UNITS_MIB = {"b": 1 / 1048576, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1048576}


def _expected_memory_limit(tier_limit: str) -> str:
    """roles/host_memory caps the tier's limit at this machine's RAM minus 2048 MiB (its default)."""
    total_mib = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1)) // 1024
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([bkmgt]?)b?", tier_limit.lower()).groups()
    tier_mib = int(float(number) * _UNITS_MIB[unit or "b"])
    cap_mib = max(total_mib - 2048, 256)
    return tier_limit if tier_mib <= cap_mib else f"{cap_mib}m"


def _interpolate(text: str, env: dict) -> str:
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], text)


def _flags(command: list[str]) -> dict:
    flags, i = {}, 0
    while i < len(command):
        arg = command[i]
        if arg.startswith("--"):
            if i + 1 < len(command) and not command[i + 1].startswith("--"):
                flags[arg] = command[i + 1]
                i += 2
                continue
            flags[arg] = True
        i += 1
    return flags


@pytest.fixture(scope="module")
def run(rendered_stacks):
    """Every case rendered by one ansible-playbook run (tests/conftest.py, shared with tests/vllm)."""
    return rendered_stacks


@pytest.fixture(scope="module")
def compose_schema():
    import check_jsonschema

    path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text())


def test_secrets_never_printed(run):
    assert SECRET not in run["stdout"] + run["stderr"]
    assert API_KEY not in run["stdout"] + run["stderr"]


@pytest.mark.parametrize("case", CASES, ids=[c["host"] for c in CASES])
def test_case(case, run, compose_schema):
    import jsonschema

    try:
        expected = planner_tiers.resolve_tier(None, case["tier"], _gpu_for(case), suggest=False)
    except PlannerError:
        expected = None  # the planner cannot even size it on this card: must be refused too
    out_dir = run["work"] / case["host"]
    failure = run["failures"].get(case["host"])

    if expected is None or not expected["fits"]:
        # Refused, not rendered: preflight stops before the stack stage creates anything.
        assert failure is not None, f"{case['host']}: the plan does not fit but the run did not fail"
        assert "Preflight |" in failure["task"], failure
        assert not out_dir.exists(), f"{out_dir} was created for a tier that does not fit"
        return

    assert failure is None, f"{case['host']} failed in {failure}"
    compose_path = out_dir / expected["compose_file"]
    assert expected["compose_file"] == ("docker-compose.vllm.yml" if expected["name"] == "dual" else "docker-compose.vllm-lite.yml")
    others = {"docker-compose.vllm.yml", "docker-compose.vllm-lite.yml"} - {expected["compose_file"]}
    assert all(not (out_dir / o).exists() for o in others)

    # Compose spec, on the file as written (variables not yet interpolated).
    text = compose_path.read_text()
    assert text.startswith("#\n# Ansible managed"), "templates start with ansible_managed"
    doc = yaml.safe_load(text)
    errors = sorted(jsonschema.Draft7Validator(compose_schema).iter_errors(doc), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]

    # .env: mode 0600, defines every ${VAR} the compose file uses, holds the secrets.
    env_path = out_dir / ".env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    env = _parse_env(env_path)
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used - env.keys() == set(), f"undefined in .env: {sorted(used - env.keys())}"
    assert env["HF_TOKEN"] == SECRET and env["VLLM_API_KEY"] == API_KEY

    resolved = yaml.safe_load(_interpolate(text, env))
    services = resolved["services"]
    instances = expected["instances"]
    gpu = _gpu_for(case)
    for i, inst in enumerate(instances):
        svc = services[inst["service"]]
        assert svc["image"].startswith("vllm/vllm-openai:v") and not svc["image"].endswith(":latest")
        assert svc["restart"] == "unless-stopped"
        assert svc["container_name"] == inst["container_name"]
        assert svc["shm_size"] == expected["shm_size"]
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        assert any(v.endswith(":/root/.cache/huggingface") for v in svc["volumes"])
        assert svc["ports"] == [f"127.0.0.1:{inst['port']}:8000"]
        res = svc["deploy"]["resources"]
        assert res["limits"]["memory"] == _expected_memory_limit(expected["container_memory_limit"])
        (device,) = res["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert device["device_ids"] == [str(gpu["index"])]
        flags = _flags([str(c) for c in svc["command"]])
        assert flags["--model"] == inst["model"]
        assert flags["--served-model-name"] == inst["served_model_name"]
        assert float(flags["--gpu-memory-utilization"]) == pytest.approx(float(inst["gpu_memory_utilization"]))
        assert int(flags["--max-model-len"]) == inst["max_model_len"]
        assert int(flags["--max-num-batched-tokens"]) == inst["max_num_batched_tokens"]
        assert int(flags["--max-num-seqs"]) == inst["max_num_seqs"]
        assert flags["--dtype"] == inst["dtype"]
        # vLLM >= 0.32 has no --swap-space (tests/vllm/test_command_contract.py): not passed.
        assert "--swap-space" not in flags
        assert flags.get("--quantization") == (inst["quantization"] or None)
        assert ("--enforce-eager" in flags) == bool(inst["enforce_eager"])
        if gpu["compute_capability"] == "7.5":
            assert flags["--dtype"] == "float16", "Turing has no bfloat16"
        if i == 0:
            assert "depends_on" not in svc
        else:
            # The second vLLM starts once the first holds its GPU memory.
            assert svc["depends_on"] == {instances[i - 1]["service"]: {"condition": "service_healthy"}}

    if "multi_index" not in case:
        assert "ai-worker" not in services, "the ai-worker is off by default"
    else:
        worker = services["ai-worker"]
        assert worker["image"] == WORKER_IMAGE
        assert worker["environment"]["VLLM_MODE"] == expected["vllm_mode"]
        assert worker["environment"]["VLLM_URL"] == f"http://{instances[0]['service']}:8000/v1"
        if expected["name"] == "dual":
            assert worker["environment"]["VLLM_URL_2"] == f"http://{instances[1]['service']}:8000/v1"
    assert {name for name, s in services.items() if "vllm/vllm-openai" in s["image"]} == {i["service"] for i in instances}
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    prom = yaml.safe_load((out_dir / "prometheus" / "prometheus.yml").read_text())
    targets = [t for config in prom["scrape_configs"][0]["static_configs"] for t in config["targets"]]  # one config per instance
    assert targets == [f"{i['service']}:8000" for i in instances]
    assert prom["scrape_configs"][0]["metrics_path"] == "/metrics"
    ds = yaml.safe_load((out_dir / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
