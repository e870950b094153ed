"""vLLM releases (catalog/engine.yml): the build a driver runs, per-release facts, refusals.

Expected values are NVIDIA's driver floors (CUDA Toolkit release notes, table "CUDA Toolkit and
Corresponding Driver Versions") and facts read in each release's source, as cited in the catalog.
"""

from __future__ import annotations

import pytest

from libra_planner import PlannerError, plan_instance
from libra_planner.engine import engine_build, release_facts
from libra_planner.models import load_engine_catalog


@pytest.mark.parametrize(
    ("version", "driver", "image"),
    [
        # CUDA 13.0 needs >= 580.65.06: the plain tag
        (None, "580.65.06", "vllm/vllm-openai:v0.33.0"),
        (None, "590.44.01", "vllm/vllm-openai:v0.33.0"),
        # below 580 but >= 575.51.03 (CUDA 12.9): the -cu129 build beside it
        (None, "580.65.05", "vllm/vllm-openai:v0.33.0-cu129"),
        (None, "575.51.03", "vllm/vllm-openai:v0.33.0-cu129"),
        ("0.32.0", "575.57.08", "vllm/vllm-openai:v0.32.0-cu129"),
        # v0.11.0 is CUDA 12.8.1: >= 570.124.06
        ("0.11.0", "570.124.06", "vllm/vllm-openai:v0.11.0"),
        ("v0.11.0", "575.51.03", "vllm/vllm-openai:v0.11.0"),
    ],
)
def test_build_the_driver_runs(version, driver, image):
    assert engine_build(None, version, driver)["image"] == image


@pytest.mark.parametrize(
    ("version", "driver", "needed"),
    [
        (None, "575.51.02", "575.51.03"),
        (None, "550.54.15", "575.51.03"),
        ("0.11.0", "570.86.10", "570.124.06"),
    ],
)
def test_too_old_driver_is_refused_naming_the_driver_needed(version, driver, needed):
    with pytest.raises(PlannerError) as err:
        engine_build(None, version, driver)
    assert err.value.field == "driver_version"
    assert f"Upgrade the driver to >= {needed}" in err.value.message
    assert driver in err.value.message


@pytest.mark.parametrize(("bad", "field"), [("0.9.9", "vllm_version"), ("latest", "vllm_version")])
def test_unknown_release_lists_the_known_ones(bad, field):
    with pytest.raises(PlannerError) as err:
        engine_build(None, bad, "580.65.06")
    assert err.value.field == field
    assert "0.33.0" in err.value.message and "0.11.0" in err.value.message


@pytest.mark.parametrize(
    ("asked", "facts_from", "graphs_in", "util"),
    [
        # the CUDA-graph estimate comes out of the budget from 0.20.0 (envs.py
        # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS "1"; "0" in 0.18.0-0.19.1), and
        # gpu_memory_utilization defaults to 0.92 from 0.20.0 (config/cache.py)
        ("0.7.2", "0.11.0", False, 0.9),
        ("0.11.0", "0.11.0", False, 0.9),
        ("0.15.1", "era 0.12.0", False, 0.9),
        ("0.19.1", "era 0.18.0", False, 0.9),
        ("0.20", "era 0.20.0", True, 0.92),
        ("0.21.0", "era 0.21.0", True, 0.92),
        ("v0.28.0", "era 0.28.0", True, 0.92),
        ("0.29.0", "0.32.0", True, 0.92),
        ("0.31.0", "0.32.0", True, 0.92),
    ],
)
def test_unlisted_release_is_planned_with_its_eras_facts(asked, facts_from, graphs_in, util):
    facts = release_facts(asked)
    assert facts["vllm_facts_from"] == facts_from
    assert facts["cuda_graphs_in_budget"] is graphs_in
    assert facts["default_gpu_memory_utilization"] == util
    assert facts["vllm_version"].count(".") == 2


@pytest.mark.parametrize(
    ("version", "runner", "v2_graphs_in"),
    [
        # config/vllm.py use_v2_model_runner per release (the era notes of catalog/engine.yml)
        ("0.21.0", "none", True),
        ("0.22.0", {"model_types": ["qwen3"], "quantized": False}, False),
        ("0.27.1", {"dense": True, "model_types": ["deepseek_v2", "qwen2_moe", "granitemoe"], "quantized": True}, False),
        ("0.29.0", "all", True),  # V2's profile_cudagraph_memory measures from 0.29.0
    ],
)
def test_model_runner_v2_per_era(version, runner, v2_graphs_in):
    facts = release_facts(version)
    assert facts["model_runner_v2"] == runner
    assert facts.get("cuda_graphs_in_budget_v2", facts["cuda_graphs_in_budget"]) is v2_graphs_in


def test_driver_must_be_a_version():
    with pytest.raises(PlannerError, match="driver_version"):
        engine_build(None, None, "five-eighty")


@pytest.mark.parametrize(
    ("version", "key", "value"),
    [
        ("0.32.0", "default_gpu_memory_utilization", 0.92),  # config/cache.py Field(default=0.92)
        ("0.11.0", "default_gpu_memory_utilization", 0.9),
        ("0.32.0", "cuda_graphs_in_budget", True),  # from v0.21
        ("0.11.0", "cuda_graphs_in_budget", False),
    ],
)
def test_release_facts(version, key, value):
    assert release_facts(version)[key] == value


@pytest.mark.parametrize(("version", "swap", "pin"), [("0.33.0", False, True), ("0.32.0", False, True), ("0.11.0", True, True)])
def test_flags_per_release(version, swap, pin):
    flags = release_facts(version)["flags"]
    assert (flags["swap_space"], flags["kv_cache_memory_bytes"]) == (swap, pin)


def test_default_release_is_the_pinned_image():
    engine = load_engine_catalog()
    assert release_facts()["vllm_version"] == engine["default_release"] == engine["vllm_version"]


RTX2070 = {"memory_total_mib": 8192, "compute_capability": "7.5", "name": "NVIDIA GeForce RTX 2070"}


@pytest.mark.parametrize(("version", "backend"), [(None, "TRITON_ATTN"), ("0.11.0", "FLEX_ATTENTION")])
def test_attention_backend_on_turing(version, backend):
    inst = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "max_model_len": 2048}
    if version:
        inst["vllm_version"] = version
    assert plan_instance(inst, RTX2070)["attention_backend"] == backend


def test_unset_utilization_is_the_release_default():
    plan = plan_instance({"model": "Qwen/Qwen2.5-0.5B-Instruct", "max_model_len": 2048}, RTX2070)
    assert plan["gpu_memory_utilization"] == 0.92
    old = plan_instance({"model": "Qwen/Qwen2.5-0.5B-Instruct", "max_model_len": 2048, "vllm_version": "0.11.0"}, RTX2070)
    assert old["gpu_memory_utilization"] == 0.9


def test_bitsandbytes_refused_on_the_pinned_release_and_planned_on_0_11():
    inst = {"model": "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit", "max_model_len": 2048}
    with pytest.raises(PlannerError, match="no bitsandbytes support"):
        plan_instance(inst, RTX2070)
    assert plan_instance(dict(inst, vllm_version="0.11.0"), RTX2070)["quantization"] == "bitsandbytes"


def test_pinned_kv_cache_is_what_the_plan_holds():
    inst = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "max_model_len": 2048, "gpu_memory_utilization": 0.5}
    free = plan_instance(inst, RTX2070)
    pinned = plan_instance(dict(inst, kv_cache_memory_bytes=1 << 30), RTX2070)
    assert pinned["kv_cache_memory_bytes"] == 1 << 30
    assert pinned["kv_cache_gib"] == 1.0
    assert pinned["kv_cache_tokens"] == (1 << 30) // pinned["kv_bytes_per_token"] // 16 * 16
    assert free["kv_cache_memory_bytes"] is None
    # the pinned plan needs weights + activations + graphs + the pinned KV + context, not the budget
    assert pinned["needs_gib"] < free["needs_gib"]


def test_builds_go_from_the_newest_cuda_to_the_oldest():
    """preflight's default minimum driver is the last build's floor (roles/preflight/defaults)."""
    for version, release in load_engine_catalog()["releases"].items():
        floors = [tuple(int(p) for p in b["min_driver_version"].split(".")) for b in release["builds"]]
        assert floors == sorted(floors, reverse=True), version


def test_engine_schema_catches_a_release_without_its_driver_floor():
    import copy

    from libra_planner.validate import validate

    doc = copy.deepcopy(load_engine_catalog())
    del doc["releases"]["0.32.0"]["builds"][1]["min_driver_version"]
    with pytest.raises(PlannerError) as err:
        validate(doc, "engine", "t")
    assert "releases.0.32.0.builds[1].min_driver_version" in str(err.value) or "min_driver_version" in str(err.value)


def test_unlisted_release_plans_what_the_listed_ones_disagree_on():
    """bitsandbytes ran until 0.27 and is gone from 0.28.0 (as in 0.32.0): a 0.24 row is planned."""
    inst = {"model": "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit", "max_model_len": 2048, "vllm_version": "0.24.0"}
    plan = plan_instance(inst, RTX2070)
    assert plan["vllm_facts_from"] == "era 0.24.0" and plan["quantization"] == "bitsandbytes"
    with pytest.raises(PlannerError, match="no bitsandbytes support"):
        plan_instance(dict(inst, vllm_version="0.32.0"), RTX2070)
