"""Per-instance memory plan: real cases, laws, dtype rules and bad input.

Real figures come from data/vllm_startup_observations.csv (row ids cited); each row is
a vLLM startup log someone published.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libra_planner import load_model_catalog, PlannerError, choose_dtype, plan_instance
from libra_planner.memory import GIB, MIB, allocator_block_bytes

T4 = {"memory_total_mib": 14.56 * 1024, "compute_capability": "7.5"}  # rows 14-16: 14.56 GiB
RTX_3090 = {"memory_total_mib": 23.57 * 1024, "compute_capability": "8.6"}  # row 22: 23.57 GiB

# ---------------------------------------------------------------- weights ("Model loading took")

WEIGHT_CASES = [
    # (source, model, dtype, observed GiB)
    ("csv row 22 (v0.6.6, RTX 3090)", "Qwen/Qwen2.5-7B-Instruct", "bfloat16", 14.25),
    ("csv row 24 (v0.18.0, pre-Ampere)", "Qwen/Qwen2.5-7B-Instruct", "float16", 14.25),
    ("csv row 13 (v0.11.0, Tesla T4)", "Qwen/Qwen2.5-0.5B-Instruct", "float16", 0.9271),
    ("csv row 25 (v0.9.2)", "Qwen/Qwen2.5-0.5B-Instruct", "bfloat16", 0.9277),
    ("csv row 14 (v0.7.2, Tesla T4)", "Qwen/Qwen2.5-1.5B-Instruct", "float16", 2.8884),
]


@pytest.mark.parametrize(("source", "model", "dtype", "observed_gib"), WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES])
def test_weights_match_logged_model_loading(source, model, dtype, observed_gib):
    gpu = dict(RTX_3090) if dtype == "bfloat16" else dict(T4)
    plan = plan_instance({"model": model, "gpu_memory_utilization": 0.9, "max_model_len": 2048, "dtype": dtype}, gpu)
    assert plan["weights_gib"] == pytest.approx(observed_gib, rel=0.01), source


# ---------------------------------------------------------------- KV cache against the logs

KV_CASES = [
    # (source, instance, gpu, observed KV GiB); each row planned with its own release (V0 rows
    # before v0.21: 0.11.0's facts, CUDA graphs and the smaller non-torch memory of that era)
    (
        "csv row 22: Qwen2.5-7B bf16, V0, util 0.90, len 8192, 16 seqs",
        {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu_memory_utilization": 0.9, "max_model_len": 8192,
         "max_num_seqs": 16, "engine": "v0", "vllm_version": "0.6.6"},
        RTX_3090,
        5.77,
    ),
    (
        "csv row 16: Qwen2.5-0.5B fp16, V0, util 0.90, len 32768",
        {"model": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_memory_utilization": 0.9, "max_model_len": 32768, "engine": "v0",
         "vllm_version": "0.6.6"},
        T4,
        10.63,
    ),
    (
        "csv row 14: Qwen2.5-1.5B fp16, V0, util 0.50, len 32768",
        {"model": "Qwen/Qwen2.5-1.5B-Instruct", "gpu_memory_utilization": 0.5, "max_model_len": 32768, "engine": "v0",
         "vllm_version": "0.7.2"},
        T4,
        2.36,
    ),
    (
        "csv row 26 / vllm#19125: Qwen2.5-0.5B, V1, util 0.40 on an 8188 MiB RTX 4060 Ti, 91472 tokens",
        # a ~0.9 release (before v0.21: planned with 0.11.0's facts)
        {"model": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_memory_utilization": 0.4, "max_model_len": 32768, "vllm_version": "0.9.0"},
        {"memory_total_mib": 8188, "compute_capability": "8.9"},
        91472 * 12288 / GIB,
    ),
]


@pytest.mark.parametrize(("source", "instance", "gpu", "observed_gib"), KV_CASES, ids=[c[0][:12] for c in KV_CASES])
def test_kv_cache_within_four_percent_of_budget(source, instance, gpu, observed_gib):
    plan = plan_instance(instance, dict(gpu))
    error = abs(plan["kv_cache_gib"] - observed_gib) / plan["budget_gib"]
    assert error <= 0.04, f"{source}: predicted {plan['kv_cache_gib']} GiB, logged {observed_gib:.3f} GiB"
    assert plan["fits"] is True, plan["reasons"]


@pytest.mark.parametrize(
    ("source", "model_or_config", "bytes_per_token"),
    [
        ("csv row 13 notes: 2*24*2*64*2", "Qwen/Qwen2.5-0.5B-Instruct", 12288),
        ("csv row 22 notes: 2*28*4*128*2", "Qwen/Qwen2.5-7B-Instruct", 57344),
        (
            "csv row 11 notes: Mistral-Small-3.2-24B text model, 40 layers x 8 kv heads x 128",
            {"model_type": "mistral", "hidden_size": 5120, "intermediate_size": 32768, "num_hidden_layers": 40,
             "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 131072,
             "max_position_embeddings": 131072, "torch_dtype": "bfloat16"},
            163840,
        ),
    ],
)
def test_kv_bytes_per_token(source, model_or_config, bytes_per_token):
    key = "model" if isinstance(model_or_config, str) else "model_config"
    plan = plan_instance({key: model_or_config, "gpu_memory_utilization": 0.9, "max_model_len": 1024},
                         {"memory_total_mib": 81080, "compute_capability": "9.0"})
    assert plan["kv_bytes_per_token"] == bytes_per_token, source


def test_fp8_kv_cache_halves_bytes_per_token(rtx4090):
    base = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu_memory_utilization": 0.9, "max_model_len": 4096}
    plain = plan_instance(base, rtx4090)
    fp8 = plan_instance(dict(base, kv_cache_dtype="fp8"), rtx4090)
    assert fp8["kv_bytes_per_token"] * 2 == plain["kv_bytes_per_token"]
    assert fp8["kv_cache_tokens"] >= 2 * plain["kv_cache_tokens"] - 16


def test_startup_check_refuses_when_free_memory_is_short():
    """csv row 36 / vllm#20305: 'Free memory on device (31.44/47.38 GiB) on startup is less than
    desired GPU memory utilization (0.95, 45.01 GiB)'."""
    gpu = {"memory_total_mib": 47.38 * 1024, "memory_free_mib": 31.44 * 1024, "compute_capability": "8.9"}
    plan = plan_instance({"model": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "gpu_memory_utilization": 0.95,
                          "max_model_len": 1024, "max_num_seqs": 1}, gpu)
    assert plan["fits"] is False
    assert any("vLLM starts only when free memory" in r and "lower gpu_memory_utilization" in r for r in plan["reasons"])


def test_too_long_context_says_what_to_change(rtx2070):
    """vLLM: "The model's max seq len (...) is larger than the maximum number of tokens that can be
    stored in KV cache" (csv row 30); the plan names the utilization and the length that work."""
    # vLLM 0.11.0 physics (CUDA graphs outside the budget), the release of that log
    base = {"model": "Qwen/Qwen2.5-7B-Instruct-AWQ", "gpu_memory_utilization": 0.85, "vllm_version": "0.11.0"}
    plan = plan_instance(dict(base, max_model_len=32768), rtx2070)
    assert plan["fits"] is False
    assert plan["kv_cache_tokens"] < 32768
    (reason,) = plan["reasons"]
    assert "shorten max_model_len" in reason and "raise gpu_memory_utilization" not in reason.split(":")[-1][:5]
    # the margin held for a cold torch.compile cache comes off what a request may use
    usable = plan["kv_cache_tokens"] - int(plan["verdict_margin_gib"] * 2**30 // plan["kv_bytes_per_token"]) - 16
    shorter = plan_instance(dict(base, max_model_len=usable // 16 * 16), rtx2070)
    assert shorter["fits"] is True, shorter["reasons"]
    assert plan_instance(dict(base, max_model_len=plan["kv_cache_tokens"] + 16), rtx2070)["fits"] is False


def test_budget_too_small_for_weights_names_utilization_that_works(rtx2070):
    inst = {"model": "Qwen/Qwen2.5-3B-Instruct-AWQ", "gpu_memory_utilization": 0.2, "max_model_len": 1024}
    plan = plan_instance(inst, rtx2070)
    assert plan["fits"] is False
    assert plan["kv_cache_tokens"] == 0
    util = plan["min_gpu_memory_utilization"]
    assert f"raise gpu_memory_utilization to >= {util:.2f}" in plan["reasons"][0]
    assert plan_instance(dict(inst, gpu_memory_utilization=util), rtx2070)["fits"] is True
    assert plan_instance(dict(inst, gpu_memory_utilization=util - 0.01), rtx2070)["fits"] is False


def test_enforce_eager_drops_cuda_graph_memory(rtx3060):
    inst = {"model": "Qwen/Qwen2.5-3B-Instruct", "gpu_memory_utilization": 0.8, "max_model_len": 4096,
            "vllm_version": "0.11.0"}
    graphs = plan_instance(inst, rtx3060)
    eager = plan_instance(dict(inst, enforce_eager=True), rtx3060)
    assert graphs["cuda_graph_gib"] > 0
    assert eager["cuda_graph_gib"] == 0
    assert eager["needs_gib"] < graphs["needs_gib"]
    # outside the budget before v0.21 (catalog/engine.yml): the KV cache does not change
    assert eager["kv_cache_tokens"] == graphs["kv_cache_tokens"]


def test_cuda_graphs_come_out_of_the_budget_from_v0_21(rtx3060):
    """0.32.0 gpu_worker.py: available KV = requested - non-KV - cudagraph_memory_estimate."""
    inst = {"model": "Qwen/Qwen2.5-3B-Instruct", "gpu_memory_utilization": 0.8, "max_model_len": 4096,
            "vllm_version": "0.32.0"}
    graphs = plan_instance(inst, rtx3060)
    eager = plan_instance(dict(inst, enforce_eager=True), rtx3060)
    assert graphs["cuda_graphs_in_budget"] is True
    # eager also skips the cold compile (catalog/engine.yml cold_compile_gib 0.98 for 0.32.0)
    assert eager["kv_cache_gib"] - graphs["kv_cache_gib"] == pytest.approx(graphs["cuda_graph_gib"] + 0.98, abs=2e-4)
    # the budget holds the graphs; eager compiles nothing, so it keeps no cold-compile peak
    assert eager["start_peak_gib"] == graphs["start_peak_gib"]
    # the verdict holds half the run-to-run graph estimate
    assert graphs["verdict_margin_gib"] == pytest.approx(graphs["cuda_graph_gib"] / 2, abs=2e-4)
    assert eager["verdict_margin_gib"] == 0


def test_plan_reports_every_documented_field(rtx2070):
    plan = plan_instance({"model": "Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4", "gpu_memory_utilization": 0.4,
                          "max_model_len": 1024}, rtx2070)
    for key in ("weights_gib", "kv_cache_gib", "kv_cache_tokens", "max_concurrency", "fits", "reasons",
                "activation_gib", "non_torch_gib", "cuda_graph_gib", "cuda_context_gib", "budget_gib",
                "kv_bytes_per_token", "headroom_gib", "dtype", "min_kv_tokens_needed", "needs_gib"):
        assert key in plan, key
    assert plan["dtype"] == "float16"
    assert plan["budget_gib"] == pytest.approx(0.4 * 8, abs=1e-3)
    assert plan["kv_cache_tokens"] % 16 == 0
    assert plan["max_concurrency"] == pytest.approx(plan["kv_cache_tokens"] / 1024, abs=0.01)


# ---------------------------------------------------------------- quantized weights


def test_quantized_weights_order(rtx3060):
    def weights(model, **extra):
        return plan_instance(dict({"model": model, "gpu_memory_utilization": 0.9, "max_model_len": 1024}, **extra), rtx3060)["weights_gib"]

    full, int8, int4, awq = (weights(f"Qwen/Qwen2.5-7B-Instruct{s}") for s in ("", "-GPTQ-Int8", "-GPTQ-Int4", "-AWQ"))
    # a 2-bit GPTQ of the same architecture, on the last pinnable release with a 2-bit kernel
    cfg = dict(load_model_catalog()["Qwen/Qwen2.5-7B-Instruct"]["config"], model_type="qwen2",
               quantization_config={"quant_method": "gptq", "bits": 2, "group_size": 128, "sym": True})
    int2 = plan_instance({"model_config": cfg, "gpu_memory_utilization": 0.9, "max_model_len": 1024,
                          "vllm_version": "0.11.0"}, rtx3060)["weights_gib"]
    assert full > int8 > int4 > int2
    assert awq == pytest.approx(int4, rel=0.02)
    # embeddings and lm_head stay 16-bit: 2 x 152064 x 3584 x 2 bytes = 2.03 GiB floor
    assert int2 > 2 * 152064 * 3584 * 2 / GIB
    # the pinned release has no 2-bit GPTQ kernel (0.32.0 auto_gptq.py TYPE_MAP: 4 and 8 bits)
    with pytest.raises(PlannerError, match="2-bit GPTQ has no kernel in vLLM 0.33.0"):
        plan_instance({"model_config": cfg, "gpu_memory_utilization": 0.9, "max_model_len": 1024}, rtx3060)


def test_allocator_rounding_rule():
    # c10/cuda/CUDACachingAllocator.cpp: 512-byte rounding; >= 10 MiB rounded to 2 MiB when the
    # tail is <= 1 MiB (kSmallSize), otherwise the tail is split off.
    assert allocator_block_bytes(1) == 512
    assert allocator_block_bytes(3 * MIB + 1) == 3 * MIB + 512
    assert allocator_block_bytes(31 * MIB + MIB // 2) == 32 * MIB
    assert allocator_block_bytes(24 * MIB + MIB // 2) == 24 * MIB + MIB // 2


# ---------------------------------------------------------------- dtype rules


@pytest.mark.parametrize(
    ("cc", "requested", "model_dtype", "expected"),
    [
        ("7.5", None, "bfloat16", "float16"),
        ("7.5", "auto", "bfloat16", "float16"),
        ("8.6", "auto", "bfloat16", "bfloat16"),
        ("8.6", None, "float16", "float16"),
        ("8.0", "half", "bfloat16", "float16"),
        ("8.9", "bfloat16", "float16", "bfloat16"),
    ],
)
def test_choose_dtype(cc, requested, model_dtype, expected):
    assert choose_dtype(cc, requested, model_dtype, "vllm_memory_plan") == expected


def test_bfloat16_refused_on_turing(rtx2070):
    with pytest.raises(PlannerError, match=r"^vllm_memory_plan: field 'dtype': bfloat16 needs compute capability >= 8.0"):
        plan_instance({"model": "Qwen/Qwen2.5-3B-Instruct", "gpu_memory_utilization": 0.5, "max_model_len": 1024,
                       "dtype": "bfloat16"}, rtx2070)


def test_auto_dtype_on_turing_is_float16(rtx2070):
    plan = plan_instance({"model": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_memory_utilization": 0.5, "max_model_len": 1024}, rtx2070)
    assert plan["dtype"] == "float16"


# ---------------------------------------------------------------- bad input

GOOD = {"model": "Qwen/Qwen2.5-3B-Instruct-AWQ", "gpu_memory_utilization": 0.5, "max_model_len": 1024}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gpu_memory_utilization": 0}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": -0.1}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": "lots"}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": True}, "gpu_memory_utilization"),
        ({"max_model_len": 0}, "max_model_len"),
        ({"max_model_len": -1}, "max_model_len"),
        ({"max_model_len": "2k"}, "max_model_len"),
        ({"max_model_len": 1024.5}, "max_model_len"),
        ({"max_model_len": False}, "max_model_len"),
        ({"max_num_seqs": 0}, "max_num_seqs"),
        ({"max_num_batched_tokens": "many"}, "max_num_batched_tokens"),
        ({"dtype": "int8"}, "dtype"),
        ({"kv_cache_dtype": "int4"}, "kv_cache_dtype"),
        ({"enforce_eager": "maybe"}, "enforce_eager"),
        ({"model": None}, "model"),
    ],
)
def test_bad_instance_names_filter_and_field(change, field, rtx2070):
    instance = {k: v for k, v in dict(GOOD, **change).items() if v is not None}
    with pytest.raises(PlannerError) as err:
        plan_instance(instance, rtx2070)
    assert str(err.value).startswith(f"vllm_memory_plan: field '{field}': "), str(err.value)
    assert err.value.field == field


def test_unknown_model_lists_close_ids(rtx2070):
    with pytest.raises(PlannerError) as err:
        plan_instance(dict(GOOD, model="Qwen/Qwen2.5-3B-Instruct-AWK"), rtx2070)
    message = str(err.value)
    assert message.startswith("vllm_memory_plan: field 'model': unknown model 'Qwen/Qwen2.5-3B-Instruct-AWK'")
    assert "Qwen/Qwen2.5-3B-Instruct-AWQ" in message


@pytest.mark.parametrize(
    ("gpu", "field"),
    [
        ({"compute_capability": "7.5"}, "gpu.memory_total_mib"),
        ({"memory_total_mib": 0, "compute_capability": "7.5"}, "gpu.memory_total_mib"),
        ({"memory_total_mib": "8 GB", "compute_capability": "7.5"}, "gpu.memory_total_mib"),
        ({"memory_total_mib": True, "compute_capability": "7.5"}, "gpu.memory_total_mib"),
        ({"memory_total_mib": 8192}, "compute_capability"),
        ({"memory_total_mib": 8192, "compute_capability": "turing"}, "compute_capability"),
        ({"memory_total_mib": 8192, "compute_capability": "7.5", "memory_free_mib": -5}, "gpu.memory_free_mib"),
    ],
)
def test_bad_gpu_names_filter_and_field(gpu, field):
    with pytest.raises(PlannerError) as err:
        plan_instance(dict(GOOD), gpu)
    assert str(err.value).startswith(f"vllm_memory_plan: field '{field}': "), str(err.value)


def test_filter_name_is_the_callers():
    with pytest.raises(PlannerError, match=r"^vllm_tier_resolve: field 'max_model_len'"):
        plan_instance(dict(GOOD, max_model_len=-5), {"memory_total_mib": 8192, "compute_capability": "7.5"},
                      filter_name="vllm_tier_resolve")


# ---------------------------------------------------------------- laws (hypothesis)

MODELS = st.sampled_from([
    "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4",
    "Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int8", "meta-llama/Llama-3.2-1B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3",
])
CCS = st.sampled_from(["7.5", "8.6", "8.9"])


@settings(max_examples=60, deadline=None)
@given(model=MODELS, cc=CCS, total_mib=st.integers(4096, 81920), short=st.integers(1, 16384), extra=st.integers(0, 16384),
       seqs=st.integers(1, 512), eager=st.booleans())
def test_more_context_never_needs_less_memory(model, cc, total_mib, short, extra, seqs, eager):
    gpu = {"memory_total_mib": total_mib, "compute_capability": cc}
    base = {"model": model, "gpu_memory_utilization": 0.9, "max_num_seqs": seqs, "max_num_batched_tokens": 2048,
            "enforce_eager": eager}
    a = plan_instance(dict(base, max_model_len=short), gpu)
    b = plan_instance(dict(base, max_model_len=short + extra), gpu)
    assert b["min_gpu_memory_utilization"] >= a["min_gpu_memory_utilization"]
    assert b["min_kv_tokens_needed"] >= a["min_kv_tokens_needed"]
    if b["fits"] and short + extra <= 32768:
        assert a["fits"], a["reasons"]


@settings(max_examples=60, deadline=None)
@given(model=MODELS, cc=CCS, small_mib=st.integers(4096, 49152), grow_mib=st.integers(0, 32768),
       util=st.floats(0.05, 1.0), length=st.integers(16, 32768), seqs=st.integers(1, 512))
def test_bigger_gpu_never_turns_a_fit_into_a_non_fit(model, cc, small_mib, grow_mib, util, length, seqs):
    """With the same settings. (vLLM's own defaults for max_num_seqs/max_num_batched_tokens rise
    on GPUs of 70 GiB and more, so the law is stated with both given explicitly.)"""
    inst = {"model": model, "gpu_memory_utilization": round(util, 2), "max_model_len": length,
            "max_num_seqs": seqs, "max_num_batched_tokens": max(2048, seqs)}
    small = plan_instance(inst, {"memory_total_mib": small_mib, "compute_capability": cc})
    big = plan_instance(inst, {"memory_total_mib": small_mib + grow_mib, "compute_capability": cc})
    if small["fits"]:
        assert big["fits"], big["reasons"]
    assert big["kv_cache_tokens"] >= small["kv_cache_tokens"]
    assert big["weights_gib"] == small["weights_gib"]


def test_batched_tokens_below_max_num_seqs_is_refused(rtx4090):
    plan = plan_instance({"model": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_memory_utilization": 0.5, "max_model_len": 1024,
                          "max_num_seqs": 256, "max_num_batched_tokens": 128}, rtx4090)
    assert plan["fits"] is False
    assert "max_num_batched_tokens (128) must be >= max_num_seqs (256)" in plan["reasons"][0]


def test_flashinfer_sampler_needs_less_than_native(rtx4090):
    """256 sampler rows x 151936 vocab on the V1 model runner of 0.11.0: the sort-based native
    sampler keeps 26 B per element beyond the logits, FlashInfer 12."""
    inst = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_memory_utilization": 0.5, "max_model_len": 4096,
            "vllm_version": "0.11.0"}
    native = plan_instance(dict(inst, sampler="native"), rtx4090)
    flashinfer = plan_instance(dict(inst, sampler="flashinfer"), rtx4090)
    assert native["sampler"] == "native" and native["model_runner"] == "v1"
    # the release's default on this card: 0.32 on use FlashInfer from compute capability 8.0
    # (v1/sample/ops/topk_topp_sampler.py), 0.11.0 is planned with the native sampler
    assert plan_instance(dict(inst, vllm_version=None), rtx4090)["sampler"] == "flashinfer"
    assert plan_instance(inst, rtx4090)["sampler"] == "native"
    assert plan_instance(dict(inst, vllm_version=None), {"memory_total_mib": 8192, "compute_capability": "7.5"})["sampler"] == "native"
    assert native["activation_gib"] - flashinfer["activation_gib"] == pytest.approx(256 * 151936 * 14 / GIB, abs=0.01)
    with pytest.raises(PlannerError, match=r"^vllm_memory_plan: field 'sampler'"):
        plan_instance(dict(inst, sampler="fast"), rtx4090)


def test_model_runner_v2_profiles_a_greedy_sampler(rtx4090):
    """Model Runner V2's dummy sampler run keeps the greedy default state (no top-k/top-p): the
    logits only from 0.26, plus an fp32 copy before; the V1 runner's native pass keeps 12 B per
    element beyond them from 0.17 (v1/worker/gpu/model_runner.py, v1/worker/gpu_model_runner.py)."""
    inst = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_memory_utilization": 0.5, "max_model_len": 4096,
            "max_num_seqs": 256, "max_num_batched_tokens": 2048}
    v2 = plan_instance(dict(inst, vllm_version="0.27.1"), rtx4090)
    v2_copy = plan_instance(dict(inst, vllm_version="0.25.1"), rtx4090)
    v1 = plan_instance(dict(inst, vllm_version="0.27.1", model_runner="v1"), rtx4090)
    assert (v2["model_runner"], v2_copy["model_runner"], v1["model_runner"]) == ("v2", "v2", "v1")
    # 256 rows x 151936 vocab: logits 2 B (bfloat16 on this card), an fp32 copy 4 B, V1 12 B more
    logits = 256 * 151936 * 2 / GIB
    hidden = 2048 * 896 * 2 / GIB  # the hidden states still held
    assert v2["activation_gib"] == pytest.approx(logits + hidden, abs=2e-4)
    assert v2_copy["activation_gib"] == pytest.approx(256 * 151936 * 6 / GIB + hidden, abs=2e-4)
    assert v1["activation_gib"] == pytest.approx(256 * 151936 * 14 / GIB + hidden, abs=2e-4)
    with pytest.raises(PlannerError, match=r"^vllm_memory_plan: field 'model_runner'"):
        plan_instance(dict(inst, model_runner="v3"), rtx4090)


def test_model_runner_v2_keeps_its_cuda_graphs_outside_the_budget_until_0_29(rtx4090):
    """V2's profile_cudagraph_memory returns 0 until 0.28.0 (v1/worker/gpu/model_runner.py)."""
    inst = {"model": "Qwen/Qwen3-8B", "gpu_memory_utilization": 0.92, "max_model_len": 8192}
    old = plan_instance(dict(inst, vllm_version="0.27.1"), rtx4090)
    new = plan_instance(dict(inst, vllm_version="0.29.0"), rtx4090)
    assert old["cuda_graphs_in_budget"] is False and new["cuda_graphs_in_budget"] is True
    assert old["kv_cache_gib"] - new["kv_cache_gib"] == pytest.approx(new["cuda_graph_gib"], abs=2e-4)
    # the V1 runner of the same release subtracts its estimate (from 0.20.0)
    assert plan_instance(dict(inst, vllm_version="0.27.1", model_runner="v1"), rtx4090)["cuda_graphs_in_budget"] is True


def test_a_cold_torch_compile_cache_takes_its_peak_from_the_kv_cache(rtx4090):
    """A cold start compiles inside the profile run (0.98 GiB on 0.27-0.31 logs, catalog/engine.yml);
    a warm one loads the compiled graphs; eager and 0.11.0 (no combo-kernel benchmarking) compile
    nothing that counts."""
    inst = {"model": "Qwen/Qwen3-8B", "gpu_memory_utilization": 0.92, "max_model_len": 8192, "vllm_version": "0.27.1"}
    cold = plan_instance(inst, rtx4090)
    warm = plan_instance(dict(inst, torch_compile_cache="warm"), rtx4090)
    assert cold["torch_compile_cache"] == "cold" and cold["cold_compile_gib"] == pytest.approx(0.98)
    assert warm["kv_cache_gib"] - cold["kv_cache_gib"] == pytest.approx(0.98, abs=2e-4)
    # the peak is over once the instance runs: it holds its budget less the compile's peak
    assert cold["start_peak_gib"] - cold["needs_gib"] == pytest.approx(0.98, abs=2e-4)
    assert warm["start_peak_gib"] == warm["needs_gib"]
    eager = plan_instance(dict(inst, enforce_eager=True), rtx4090)
    assert eager["cold_compile_gib"] == 0
    assert plan_instance(dict(inst, vllm_version="0.11.0"), rtx4090)["cold_compile_gib"] == 0
    with pytest.raises(PlannerError, match=r"^vllm_memory_plan: field 'torch_compile_cache'.*cold, warm"):
        plan_instance(dict(inst, torch_compile_cache="lukewarm"), rtx4090)


def test_a_pinned_kv_cache_never_meets_the_compile_peak(rtx4090):
    """--kv-cache-memory-bytes: the cache is allocated after the profile run, so the instance
    peaks at the larger of the compile's peak and what it holds with its cache."""
    inst = {"model": "Qwen/Qwen2.5-3B-Instruct-AWQ", "gpu_memory_utilization": 0.3, "max_model_len": 2048}
    small = plan_instance(dict(inst, kv_cache_memory_bytes=256 * 1024 * 1024), rtx4090)
    big = plan_instance(dict(inst, kv_cache_memory_bytes=4 * GIB), rtx4090)
    base = small["weights_gib"] + small["activation_gib"] + small["non_torch_gib"] + small["cuda_graph_gib"] + small["cuda_context_gib"]
    assert small["needs_gib"] == pytest.approx(base + 0.25, abs=2e-3)
    assert small["start_peak_gib"] == pytest.approx(base + 0.98, abs=2e-3)  # the compile's peak is the larger
    assert big["start_peak_gib"] == pytest.approx(big["needs_gib"], abs=2e-3) == pytest.approx(base + 4, abs=2e-3)
