"""Several instances on one GPU, and the utilization solver."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libra_planner import PlannerError, plan_instance, plan_instances, solve_utilization

# The operator's guide (seed/memory-optimization-guide.ko.md, "dual"): 3B + 7B on an 8 GB
# RTX 2070 at utilization 0.85 each, 2048 context, 4096 batched tokens.
GUIDE_DUAL = [
    {"name": "small", "model": "Qwen/Qwen2.5-3B-Instruct-AWQ", "gpu_memory_utilization": 0.85,
     "max_model_len": 2048, "max_num_batched_tokens": 4096},
    {"name": "large", "model": "Qwen/Qwen2.5-7B-Instruct-AWQ", "gpu_memory_utilization": 0.85,
     "max_model_len": 2048, "max_num_batched_tokens": 4096},
]


def test_guide_dual_at_085_each_does_not_fit_8gb(rtx2070):
    result = plan_instances(GUIDE_DUAL, rtx2070)
    assert result["fits"] is False
    first, second = result["instances"]
    assert first["fits"] is True, first["reasons"]  # the first one alone starts
    assert second["fits"] is False
    # the second fails vLLM's startup check: free after the first < 0.85 x total
    assert any(r.startswith("instance 2 (large):") and "vLLM starts only when free memory" in r for r in result["reasons"])
    assert any("together the instances need" in r for r in result["reasons"])
    assert result["total_needs_gib"] > 8.0
    assert result["free_after_gib"] < 0


def test_second_instance_sees_what_the_first_leaves(rtx4090):
    pair = [dict(GUIDE_DUAL[0], gpu_memory_utilization=0.3), dict(GUIDE_DUAL[1], gpu_memory_utilization=0.5)]
    result = plan_instances(pair, rtx4090)
    assert result["fits"] is True, result["reasons"]
    first, second = result["instances"]
    assert first["free_before_gib"] == pytest.approx(24564 / 1024, abs=1e-3)
    assert second["free_before_gib"] == pytest.approx(first["free_before_gib"] - first["needs_gib"], abs=1e-3)
    assert result["free_after_gib"] == pytest.approx(second["free_before_gib"] - second["needs_gib"], abs=1e-3)
    assert result["total_budget_gib"] == pytest.approx(0.8 * 24564 / 1024, abs=1e-3)


def test_a_cold_compiles_peak_is_released_before_the_next_instance_starts(rtx4090):
    """Instances start in order: each needs its whole budget while it compiles, and once it runs it
    holds the budget less the compile's peak (0.98 GiB from catalog/engine.yml), which the next
    one finds free."""
    pair = [dict(GUIDE_DUAL[0], gpu_memory_utilization=0.3), dict(GUIDE_DUAL[1], gpu_memory_utilization=0.5)]
    cold = plan_instances(pair, rtx4090)
    first, second = cold["instances"]
    total = 24564 / 1024
    context = first["cuda_context_gib"]
    graphs_out = [0 if p["cuda_graphs_in_budget"] else p["cuda_graph_gib"] for p in (first, second)]
    held_first = int(0.3 * 24564 * 2**20) / 2**30 - 0.98 + context + graphs_out[0]
    assert second["free_before_gib"] == pytest.approx(total - held_first, abs=1e-3)
    # the most the GPU must give: the first one's hold plus the second one's start
    assert cold["total_needs_gib"] == pytest.approx(held_first + int(0.5 * 24564 * 2**20) / 2**30 + context + graphs_out[1], abs=1e-3)
    warm = plan_instances([dict(p, torch_compile_cache="warm") for p in pair], rtx4090)
    assert warm["instances"][1]["free_before_gib"] == pytest.approx(second["free_before_gib"] - 0.98, abs=1e-3)


def test_solver_starts_each_instance_on_what_the_earlier_ones_hold():
    """On a 12 GB card the tier dual's pair (16 sequences each) solves: the 7B starts once the
    3B's compile peak is gone."""
    gpu = {"name": "NVIDIA GeForce RTX 3060", "memory_total_mib": 12288, "compute_capability": "8.6"}
    pair = [dict({k: v for k, v in inst.items() if k != "gpu_memory_utilization"}, max_num_seqs=16) for inst in GUIDE_DUAL]
    utils = solve_utilization(pair, gpu, min_concurrency=1, margin_gib=0.25)
    result = plan_instances([dict(inst, gpu_memory_utilization=u) for inst, u in zip(pair, utils)], gpu)
    assert result["fits"] is True, result["reasons"]
    # summed whole budgets (what a start needs, ignoring that the peak is released) would not fit
    budgets = sum(p["budget_gib"] + p["cuda_context_gib"] for p in result["instances"])
    assert budgets > 12.0 >= result["total_needs_gib"]


def test_used_memory_counts_against_the_first_instance():
    gpu = {"memory_total_mib": 24564, "memory_used_mib": 20000, "compute_capability": "8.9"}
    result = plan_instances([dict(GUIDE_DUAL[0], gpu_memory_utilization=0.3)], gpu)
    assert result["fits"] is False
    assert "vLLM starts only when free memory" in result["reasons"][0]


def test_solver_refuses_guide_dual_on_8gb_and_says_why(rtx2070):
    with pytest.raises(PlannerError) as err:
        solve_utilization(GUIDE_DUAL, rtx2070)
    message = str(err.value)
    assert message.startswith("vllm_solve_utilization: field 'instances': ")
    assert "shorten max_model_len" in message and "2-bit" in message


@pytest.mark.parametrize(
    ("gpu_name", "max_num_seqs"),
    [
        # 12 GB: vLLM's default 256 sequences make the sampler's profile peak ~1 GiB per
        # instance and the pair does not fit; 32 sequences do.
        ("rtx3060", 32),
        ("rtx4090", None),
    ],
)
def test_solved_utilizations_fit_when_planned(gpu_name, max_num_seqs, request):
    gpu = request.getfixturevalue(gpu_name)
    pair = [dict(i, max_model_len=2048) for i in GUIDE_DUAL]
    if max_num_seqs:
        pair = [dict(i, max_num_seqs=max_num_seqs) for i in pair]
    utils = solve_utilization(pair, gpu, min_concurrency=2, margin_gib=0.25)
    assert len(utils) == 2
    assert all(0 < u <= 1 and round(u, 2) == u for u in utils)
    planned = [dict(inst, gpu_memory_utilization=u) for inst, u in zip(pair, utils)]
    result = plan_instances(planned, gpu)
    assert result["fits"] is True, result["reasons"]
    for plan in result["instances"]:
        assert plan["max_concurrency"] >= 2
    # the smallest: one hundredth less leaves no room for the margin + 2 x max_model_len, the
    # margin being the larger of the tier's 0.25 GiB and the verdict's (graph estimate, cold compile)
    for index, util in enumerate(utils):
        lower = dict(planned[index], gpu_memory_utilization=round(util - 0.01, 2))
        plan = plan_instance(lower, gpu)
        margin = max(0.25, plan["verdict_margin_gib"])
        assert plan["kv_cache_gib"] - margin < 2 * 2048 * plan["kv_bytes_per_token"] / 2**30 + 1e-9


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(["Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct-AWQ", "Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4"]),
       short=st.integers(128, 8192), extra=st.integers(0, 8192), conc=st.integers(1, 4))
def test_solver_never_asks_less_for_more_context(model, short, extra, conc):
    gpu = {"memory_total_mib": 24564, "compute_capability": "8.9"}
    base = {"model": model, "gpu_memory_utilization": 0.5}
    a = solve_utilization([dict(base, max_model_len=short)], gpu, min_concurrency=conc)
    b = solve_utilization([dict(base, max_model_len=short + extra)], gpu, min_concurrency=conc)
    assert b[0] >= a[0]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (([],), "instances"),
        (("not a list",), "instances"),
        (([42],), "instances[0]"),
    ],
)
def test_multi_plan_bad_input(args, field, rtx2070):
    with pytest.raises(PlannerError) as err:
        plan_instances(*args, rtx2070)
    assert str(err.value).startswith(f"vllm_multi_plan: field '{field}': ")


@pytest.mark.parametrize(("kwargs", "field"), [({"min_concurrency": 0}, "min_concurrency"), ({"margin_gib": -1}, "margin_gib"),
                                               ({"min_concurrency": True}, "min_concurrency")])
def test_solver_bad_input(kwargs, field, rtx2070):
    with pytest.raises(PlannerError) as err:
        solve_utilization([GUIDE_DUAL[0]], rtx2070, **kwargs)
    assert str(err.value).startswith(f"vllm_solve_utilization: field '{field}': ")


def test_instance_errors_carry_the_multi_filter_name(rtx2070):
    with pytest.raises(PlannerError, match=r"^vllm_multi_plan: field 'gpu_memory_utilization'"):
        plan_instances([dict(GUIDE_DUAL[0], gpu_memory_utilization=1.5)], rtx2070)
