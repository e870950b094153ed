"""Tier resolution over the GPU presets: catalog/tiers.yml + overrides + a GPU -> resolved tier.

Expectations come from the project's requirements: tier=auto chooses the dual stack on a 24 GB
card and a lite stack on an 8 GB card (the operator guide's RTX 2070), Turing (7.5) gets float16,
and a tier that does not fit says what would. Every "what would fit" claim is re-planned here.
"""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libra_planner import load_model_catalog
from libra_planner.errors import PlannerError
from libra_planner.tiers import gpu_from_memory, gpu_from_preset, load_gpu_presets, load_tier_catalog, resolve_all, resolve_tier, tier_names

CATALOG = load_tier_catalog()
LITE = {"single", "int2", "ultralight"}
RESOLVED_KEYS = {
    "name", "requested", "compose_file", "vllm_mode", "quality_rank", "swap_space_gib", "shm_size",
    "container_memory_limit", "host_swap_gib", "fits", "reasons", "candidates", "instances",
}
INSTANCE_KEYS = {
    "name", "service", "container_name", "port", "model", "served_model_name", "dtype", "quantization",
    "gpu_memory_utilization", "max_model_len", "max_num_batched_tokens", "max_num_seqs", "enforce_eager",
    "kv_cache_dtype", "plan",
}


def _resolve(tier, gpu, models=None, overrides=None):
    return resolve_tier(copy.deepcopy(CATALOG), tier, gpu, models or {}, overrides or {})


# --------------------------------------------------------------------------- auto
AUTO_EXPECTED = [
    # (preset, what auto must choose) -- from the requirements' "done when"
    ("rtx2070", LITE),  # 8 GB: a lite stack
    ("rtx4090", {"dual"}),  # 24 GB: the dual stack
    ("a100-80gb", {"dual"}),
    ("h100-80gb", {"dual"}),
]


@pytest.mark.parametrize("preset,allowed", AUTO_EXPECTED, ids=[row[0] for row in AUTO_EXPECTED])
def test_auto_choice(preset, allowed):
    resolved = _resolve("auto", gpu_from_preset(preset))
    assert resolved["fits"]
    assert resolved["requested"] == "auto"
    assert resolved["name"] in allowed, resolved["reasons"]
    assert resolved["compose_file"] == ("docker-compose.vllm.yml" if resolved["name"] == "dual" else "docker-compose.vllm-lite.yml")


@pytest.mark.parametrize("preset", sorted(load_gpu_presets()))
def test_auto_takes_the_best_ranked_tier_that_fits(preset):
    gpu = gpu_from_preset(preset)
    resolved = _resolve("auto", gpu)
    candidates = resolved["candidates"]
    # auto chooses among the guide's tiers only, never max (auto: false in catalog/tiers.yml)
    assert [c["name"] for c in candidates] == [n for n in tier_names(CATALOG) if n != "max"]
    ranks = [c["quality_rank"] for c in candidates]
    assert ranks == sorted(ranks, reverse=True)
    # each candidate's verdict is the verdict of resolving that tier directly
    for cand in candidates:
        assert cand["fits"] == _resolve(cand["name"], gpu)["fits"], cand
    fitting = [c["name"] for c in candidates if c["fits"]]
    assert resolved["fits"] == bool(fitting)
    if fitting:
        assert resolved["name"] == fitting[0]


# --------------------------------------------------------------------------- shape and knobs
@pytest.mark.parametrize("tier", tier_names(CATALOG))
def test_resolved_shape(tier):
    resolved = _resolve(tier, gpu_from_preset("rtx4090"))
    assert RESOLVED_KEYS <= set(resolved)
    spec = CATALOG["tiers"][tier]
    assert resolved["compose_file"] == spec["compose_file"]
    assert resolved["vllm_mode"] == spec["vllm_mode"]
    assert [i["name"] for i in resolved["instances"]] == [i["name"] for i in spec["instances"]]
    assert resolved["instances"][0]["container_name"] == "libra-vllm"
    for inst in resolved["instances"]:
        assert INSTANCE_KEYS <= set(inst), INSTANCE_KEYS - set(inst)
        assert 0 < inst["gpu_memory_utilization"] <= 1
        if tier == "max":  # the ladder's largest rung that fits, not the slot's default
            assert inst["model"] in CATALOG["ladder"]
            # the reason says what it fits with, a cold start's compile peak included
            why = resolved["reasons"][0]
            assert why.startswith(f"tier max runs {inst['model']}"), why
            assert f"a cold torch.compile's peak {inst['plan']['cold_compile_gib']:.2f} GiB" in why, why
        else:
            assert inst["model"] == CATALOG["models"][inst["model_slot"]]
        for key in ("weights_gib", "kv_cache_gib", "kv_cache_tokens", "max_concurrency", "fits", "reasons"):
            assert key in inst["plan"]
    if len(resolved["instances"]) > 1:
        assert sum(i["gpu_memory_utilization"] for i in resolved["instances"]) <= 1


@pytest.mark.parametrize(
    "preset,dtype",
    # An unquantized bfloat16 checkpoint (Qwen/Qwen2.5-1.5B-Instruct, config.json torch_dtype
    # bfloat16, catalog/models.yml) on cards on both sides of compute capability 8.0, below which
    # there is no bfloat16 (NVIDIA CUDA programming guide): a planner without the rule would give
    # bfloat16 on the Turing cards, one that always picks float16 would fail the Ampere/Ada ones.
    [("rtx2070", "float16"), ("t4", "float16"), ("rtx3060", "bfloat16"), ("rtx4090", "bfloat16")],
)
def test_dtype_by_compute_capability(preset, dtype):
    resolved = _resolve("ultralight", gpu_from_preset(preset), models={"ultralight": "Qwen/Qwen2.5-1.5B-Instruct"})
    assert {i["dtype"] for i in resolved["instances"]} == {dtype}


def test_bfloat16_is_refused_on_turing():
    with pytest.raises(PlannerError) as info:
        _resolve("single", gpu_from_preset("rtx2070"), overrides={"single": {"dtype": "bfloat16"}})
    assert "dtype" in info.value.field or "dtype" in info.value.message


def test_override_precedence():
    overrides = {"dual": {"max_model_len": 1024, "swap_space_gib": 2, "instances": {"large": {"max_model_len": 512, "gpu_memory_utilization": 0.5}}}}
    resolved = _resolve("dual", gpu_from_preset("rtx4090"), overrides=overrides)
    small, large = resolved["instances"]
    assert small["max_model_len"] == 1024  # tier override over the catalog's 2048
    assert large["max_model_len"] == 512  # instance override over the tier override
    assert large["gpu_memory_utilization"] == 0.5  # fixed, not solved
    assert resolved["swap_space_gib"] == 2
    assert small["max_num_batched_tokens"] == CATALOG["tiers"]["dual"]["max_num_batched_tokens"]


def test_vllm_models_override_and_unknown_model():
    gpu = gpu_from_preset("rtx4090")
    resolved = _resolve("single", gpu, models={"small": "Qwen/Qwen2.5-3B-Instruct-GPTQ-Int4"})
    assert resolved["instances"][0]["model"] == "Qwen/Qwen2.5-3B-Instruct-GPTQ-Int4"
    assert resolved["instances"][0]["quantization"] == "gptq_marlin"  # Ada: vLLM's Marlin kernel

    with pytest.raises(PlannerError) as info:
        _resolve("single", gpu, models={"small": "acme/NotAModel-3B"})
    assert info.value.field == "vllm_models.small"
    assert "no entry in catalog/models.yml and no model_config" in info.value.message


@pytest.mark.parametrize(
    "preset,tier,version,expected",
    [
        # vLLM 0.32 runs Marlin from compute capability 7.5 (utils/marlin_utils.py), so Turing too;
        # an explicit --quantization awq would force the slow kernel (vllm-project/vllm#20112).
        ("rtx2070", "dual", None, ["awq_marlin", "awq_marlin"]),
        ("rtx3060", "dual", None, ["awq_marlin", "awq_marlin"]),
        ("rtx2070", "ultralight", None, ["gptq_marlin"]),
        ("rtx4090", "ultralight", None, ["gptq_marlin"]),
        ("rtx4090", "int2", None, ["gptq_marlin"]),
        # vLLM 0.11.0: Marlin from 8.0 only, so Turing gets the plain kernels
        ("rtx2070", "dual", "0.11.0", ["awq", "awq"]),
        ("rtx2070", "ultralight", "0.11.0", ["gptq"]),
        ("rtx3060", "dual", "0.11.0", ["awq_marlin", "awq_marlin"]),
    ],
)
def test_quantization_flag_matches_the_kernel_planned(preset, tier, version, expected):
    overrides = {tier: {"vllm_version": version}} if version else {}
    resolved = _resolve(tier, gpu_from_preset(preset), overrides=overrides)
    assert [i["quantization"] for i in resolved["instances"]] == expected


def test_unknown_model_with_model_config_is_planned():
    entry = load_model_catalog()["Qwen/Qwen2.5-3B-Instruct-AWQ"]
    config = dict(entry["config"], model_type="qwen2", quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True})
    overrides = {"single": {"instances": {"small": {"model_config": config}}}}
    gpu = gpu_from_preset("rtx3060")
    custom = _resolve("single", gpu, models={"small": "acme/private-3b-awq"}, overrides=overrides)
    stock = _resolve("single", gpu)
    assert custom["instances"][0]["model"] == "acme/private-3b-awq"
    assert custom["fits"]
    assert custom["instances"][0]["plan"]["weights_gib"] == pytest.approx(stock["instances"][0]["plan"]["weights_gib"], rel=0.02)


@pytest.mark.parametrize("tier", ["", None, "duel", "Dual", "all"])
def test_unknown_or_empty_tier_lists_valid_names(tier):
    with pytest.raises(PlannerError) as info:
        _resolve(tier, gpu_from_preset("rtx2070"))
    assert info.value.field == "tier"
    for name in ("dual", "single", "ultralight", "int2", "auto"):
        assert name in info.value.message


def test_unknown_instance_override_names_the_instances():
    with pytest.raises(PlannerError) as info:
        _resolve("dual", gpu_from_preset("rtx4090"), overrides={"dual": {"instances": {"big": {"max_model_len": 512}}}})
    assert info.value.field == "vllm_tier_overrides.dual.instances.big"
    assert "small, large" in info.value.message


# --------------------------------------------------------------------------- does not fit
def test_dual_on_8gb_does_not_fit_and_says_why():
    gpu = gpu_from_preset("rtx2070")
    resolved = _resolve("dual", gpu)
    assert not resolved["fits"]
    text = " | ".join(resolved["reasons"])
    needs = re.search(r"needs ([0-9.]+) GiB", text)
    assert needs and float(needs.group(1)) > 0
    assert "has 8.00 GiB" in text
    # names what would fit, and each of those claims holds when planned
    assert any(r.startswith("tiers that fit") or r.startswith("a bigger card") or r.startswith("a shorter context") or r.startswith("the int2 slot's 7B") for r in resolved["reasons"])


SUGGESTION_GPUS = [gpu_from_memory(mib, cap) for mib, cap in ((4096, "7.5"), (6144, "7.5"), (8192, "7.5"), (10240, "8.6"), (12288, "8.6"), (16384, "8.9"))]
FIXED_UTIL_LONG_CONTEXT = {"single": {"gpu_memory_utilization": 0.55, "max_model_len": 32768}}


@pytest.mark.parametrize("gpu", SUGGESTION_GPUS, ids=[f"{g['memory_total_mib']}MiB" for g in SUGGESTION_GPUS])
@pytest.mark.parametrize("tier,overrides", [("dual", {}), ("single", {}), ("int2", {}), ("single", FIXED_UTIL_LONG_CONTEXT)], ids=["dual", "single", "int2", "single-32k"])
def test_every_suggestion_is_true(gpu, tier, overrides):
    resolved = _resolve(tier, gpu, overrides=overrides)
    if resolved["fits"]:
        return
    checked = 0
    for reason in resolved["reasons"]:
        if m := re.match(r"a shorter context fits: max_model_len (\d+)", reason):
            merged = copy.deepcopy(overrides)
            merged.setdefault(tier, {})["max_model_len"] = int(m.group(1))
            assert _resolve(tier, gpu, overrides=merged)["fits"], reason
            checked += 1
        elif m := re.match(r"the int2 slot's 7B fits as the large model: vllm_models.large: (\S+)", reason):
            assert _resolve(tier, gpu, models={"large": m.group(1)}, overrides=overrides)["fits"], reason
            checked += 1
        elif m := re.match(r"tiers that fit [^:]+: ([a-z0-9_, ]+) \(", reason):
            for name in m.group(1).split(", "):
                assert _resolve(name, gpu, overrides=overrides)["fits"], reason
            checked += 1
        elif m := re.match(r"a bigger card fits tier \w+ as it is: ([\w-]+)", reason):
            bigger = gpu_from_preset(m.group(1))
            assert bigger["memory_total_mib"] > gpu["memory_total_mib"]
            assert _resolve(tier, bigger, overrides=overrides)["fits"], reason
            checked += 1
    assert checked or "nothing smaller in the catalog fits this GPU" in resolved["reasons"], resolved["reasons"]


def test_the_guides_dual_settings_do_not_survive_8gb():
    # The guide runs both instances at 0.85 with 2048 tokens on an 8 GB RTX 2070: 1.70 of the card.
    guide = {"dual": {"gpu_memory_utilization": 0.85, "max_model_len": 2048, "max_num_batched_tokens": 4096}}
    resolved = _resolve("dual", gpu_from_preset("rtx2070"), overrides=guide)
    assert not resolved["fits"]
    assert [i["gpu_memory_utilization"] for i in resolved["instances"]] == [0.85, 0.85]
    assert resolved["instances"][1]["plan"]["fits"] is False  # the second one cannot start


def test_shorter_context_is_proposed_when_context_is_the_problem():
    resolved = _resolve("single", gpu_from_preset("rtx2070"), overrides=FIXED_UTIL_LONG_CONTEXT)
    assert not resolved["fits"]
    assert any(r.startswith("a shorter context fits: max_model_len ") for r in resolved["reasons"]), resolved["reasons"]


def test_auto_with_nothing_fitting_names_the_smallest():
    tiny = gpu_from_memory(2048, "7.5", name="tiny")
    resolved = _resolve("auto", tiny)
    assert not resolved["fits"]
    assert resolved["reasons"][0].startswith("tier=auto: no tier fits tiny")
    assert all(not c["fits"] for c in resolved["candidates"])


def test_resolve_all_reports_every_tier_without_raising():
    results = resolve_all(copy.deepcopy(CATALOG), gpu_from_preset("rtx2070"))
    assert [r["name"] for r in results] == tier_names(CATALOG)
    assert any(not r["fits"] for r in results) and any(r["fits"] for r in results)
    # a tier that cannot be planned at all is reported with its error, the others still are
    results = resolve_all(copy.deepcopy(CATALOG), gpu_from_preset("rtx2070"), models={"int2": "acme/unknown-7b-int2"})
    by_name = {r["name"]: r for r in results}
    assert not by_name["int2"]["fits"]
    assert "vllm_models.int2" in by_name["int2"]["reasons"][0]
    assert by_name["single"]["fits"]


# --------------------------------------------------------------------------- laws
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tier=st.sampled_from(["dual", "single", "int2", "ultralight"]), small=st.integers(3072, 40960), extra=st.integers(0, 40960), cap=st.sampled_from(["7.5", "8.6", "8.9"]))
def test_bigger_gpu_never_turns_a_fit_into_a_non_fit(tier, small, extra, cap):
    if _resolve(tier, gpu_from_memory(small, cap))["fits"]:
        assert _resolve(tier, gpu_from_memory(small + extra, cap))["fits"]


# --------------------------------------------------------------------------- GPU inputs
def test_gpu_presets():
    presets = load_gpu_presets()
    assert {"rtx2070", "rtx3060", "t4", "rtx4090", "a100-40gb", "a100-80gb", "l4", "h100-80gb"} <= set(presets)
    assert (presets["rtx2070"]["memory_total_mib"], presets["rtx2070"]["compute_capability"]) == (8192, "7.5")
    assert (presets["rtx3060"]["memory_total_mib"], presets["rtx3060"]["compute_capability"]) == (12288, "8.6")
    assert (presets["rtx4090"]["memory_total_mib"], presets["rtx4090"]["compute_capability"]) == (24564, "8.9")
    assert presets["t4"]["memory_total_mib"] == 15360
    with pytest.raises(PlannerError) as info:
        gpu_from_preset("rtx9090")
    assert "rtx2070" in info.value.message and info.value.field == "gpu_facts_preset"


@pytest.mark.parametrize("mib,cap,field", [(0, "7.5", "gpu_facts_memory_total_mib"), ("x", "7.5", "gpu_facts_memory_total_mib"), (8192, "turing", "gpu_facts_compute_capability"), (8192, 7.5, None)])
def test_gpu_from_memory(mib, cap, field):
    if field is None:
        assert gpu_from_memory(mib, cap)["compute_capability"] == "7.5"
        return
    with pytest.raises(PlannerError) as info:
        gpu_from_memory(mib, cap)
    assert info.value.field == field


@pytest.mark.parametrize("mib", [8192, 24564, 65537, 81920])
def test_an_absolute_budget_is_the_same_gib_on_every_card(mib):
    """ultralight's gpu_memory_gib 3.2 (catalog/tiers.yml): the utilization that gives it on each
    card, never more than 3.2 GiB and less only by what vLLM's int(utilization x total) rounds."""
    resolved = _resolve("ultralight", gpu_from_memory(mib, "8.6"))
    inst = resolved["instances"][0]
    budget_mib = inst["gpu_memory_utilization"] * mib
    assert 3.2 * 1024 - 0.0001 * mib <= budget_mib <= 3.2 * 1024
    assert inst["gpu_memory_gib"] == 3.2 and resolved["fits"], resolved["reasons"]
