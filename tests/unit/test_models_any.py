"""Any model from its config.json: fields, not families.

Expected byte counts are written out by hand from the config values (tensor shapes x bytes),
with sizes chosen so that PyTorch's allocator rounding (512 B) leaves them exact.
"""

from __future__ import annotations

import pytest

from libra_planner import PlannerError, load_model_catalog, plan_instance, resolve_model_config
from libra_planner.memory import _linear_tensor_bytes, kv_bytes_per_request, weights_bytes
from libra_planner.models import derived_max_model_len

RTX4090 = {"memory_total_mib": 24564, "compute_capability": "8.9", "name": "NVIDIA GeForce RTX 4090"}


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"max_position_embeddings": 32768}, 32768),
        # linear / dynamic scaling multiplies (vllm/config/model.py _get_and_verify_max_len)
        ({"max_position_embeddings": 32768, "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, 131072),
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, 8192),
        # llama3 and yarn already scale max_position_embeddings
        ({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, 131072),
        ({"max_position_embeddings": 40960, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, 40960),
        # Gemma 3's 128K is already scaled
        ({"model_type": "gemma3_text", "max_position_embeddings": 131072, "rope_scaling": {"rope_type": "linear", "factor": 8.0}}, 131072),
        # the smallest of the length keys; none at all: 2048
        ({"max_position_embeddings": 8192, "seq_length": 4096}, 4096),
        ({}, 2048),
    ],
)
def test_model_max_len_as_vllm_derives_it(cfg, expected):
    assert derived_max_model_len(cfg) == expected


@pytest.mark.parametrize(("model", "expected"), [("Qwen/Qwen3-8B-AWQ", 40960), ("Qwen/Qwen2.5-7B-Instruct-AWQ", 32768),
                                                 ("google/gemma-3-4b-it", 131072)])
def test_unset_max_model_len_is_the_models_own(model, expected):
    plan = plan_instance({"model": model}, RTX4090)
    assert plan["max_model_len"] == expected
    assert plan["max_model_len_source"].startswith("model")


def test_gemma3_sliding_layers_hold_their_window_only():
    # 34 layers, every 6th global (5 of them), 29 sliding with window 1024; 4 KV heads x 256 x fp16
    arch = resolve_model_config({"model": "google/gemma-3-4b-it"}, "t")
    assert arch["layer_windows"].count(None) == 5
    per_layer_token = 2 * 4 * 256 * 2
    # window - 1 + max_num_batched_tokens = 3071 tokens, rounded up to a block of 16: 3072
    expected = per_layer_token * (5 * 8192 + 29 * 3072)
    assert kv_bytes_per_request(arch, 2, 8192, 2048, 16) == expected
    # a short request holds the same tokens in every layer
    assert kv_bytes_per_request(arch, 2, 1024, 2048, 16) == per_layer_token * 34 * 1024


def test_layer_types_list_wins():
    cfg = {"model_type": "x", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": 1024, "max_position_embeddings": 4096, "sliding_window": 512,
           "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]}
    assert resolve_model_config({"model_config": cfg}, "t")["layer_windows"] == [512, None, 512, None]


def _tiny(**extra):
    # every tensor a multiple of 512 bytes and under 10 MiB: the allocator keeps them exact
    return dict({"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "vocab_size": 1024, "max_position_embeddings": 1024,
                 "tie_word_embeddings": False, "torch_dtype": "float16"}, **extra)


def test_dense_weights_by_hand():
    arch = resolve_model_config({"model_config": _tiny(model_type="llama")}, "t")
    layer = 256 * 512 * 2 + 256 * 256 * 2 + 256 * 1024 * 2 + 512 * 256 * 2 + 2 * 256 * 2
    embed = 1024 * 256 * 2
    rope = 1024 * 64 * 2
    assert weights_bytes(arch, 2) == 2 * layer + 2 * embed + 256 * 2 + rope


def test_qk_norm_adds_two_head_norms_per_layer():
    llama = weights_bytes(resolve_model_config({"model_config": _tiny(model_type="llama")}, "t"), 2)
    qwen3 = weights_bytes(resolve_model_config({"model_config": _tiny(model_type="qwen3")}, "t"), 2)
    assert qwen3 - llama == 2 * 2 * 512  # 64 x 2 B each, allocator-rounded to 512


def test_moe_weights_by_hand():
    # Mixtral-style: every layer sparse, 8 experts of intermediate 128, a router, no shared expert
    cfg = _tiny(model_type="mixtral", num_local_experts=8, moe_intermediate_size=128, num_experts_per_tok=2)
    arch = resolve_model_config({"model_config": cfg}, "t")
    attn = 256 * 512 * 2 + 256 * 256 * 2 + 2 * 256 * 2
    experts = 8 * 256 * 256 * 2 + 8 * 128 * 256 * 2 + 256 * 8 * 2
    assert weights_bytes(arch, 2) == 2 * (attn + experts) + 2 * 1024 * 256 * 2 + 256 * 2 + 1024 * 64 * 2


def test_moe_shared_expert_and_dense_layers():
    # Qwen2-MoE style: a shared expert with its gate; mlp_only_layers keeps layer 0 dense
    base = _tiny(model_type="qwen2_moe", num_experts=8, moe_intermediate_size=128, shared_expert_intermediate_size=256)
    arch = resolve_model_config({"model_config": dict(base, mlp_only_layers=[0])}, "t")
    assert arch["moe"]["sparse_layers"] == 1
    all_sparse = resolve_model_config({"model_config": base}, "t")
    assert all_sparse["moe"]["sparse_layers"] == 2
    sparse_block = 8 * 256 * 256 * 2 + 8 * 128 * 256 * 2 + 256 * 8 * 2 + 256 * 512 * 2 + 256 * 256 * 2 + 512
    dense_block = 256 * 1024 * 2 + 512 * 256 * 2
    assert weights_bytes(all_sparse, 2) - weights_bytes(arch, 2) == sparse_block - dense_block


@pytest.mark.parametrize(
    ("quant", "expected"),
    [
        # FP8 with [128, 128] block scales: one byte per weight + ceil(512/128) x ceil(256/128) float32 scales
        ({"method": "fp8", "bits": 8, "weight_scale": "block", "block": [128, 128], "act_bits": 16}, [256 * 512, 4 * 2 * 4]),
        # FP8 per output channel, static input scale
        ({"method": "fp8", "bits": 8, "weight_scale": "channel", "block": None, "act_bits": 8, "act_static": True},
         [256 * 512, 512 * 4, 4]),
        # compressed-tensors w4a16, group 128, symmetric: int32-packed weight + fp16 group scales
        ({"method": "compressed-tensors", "bits": 4, "group_size": 128, "sym": True, "weight_scale": "group"},
         [256 // 8 * 512 * 4, 2 * 512 * 2]),
        # compressed-tensors w8a8 int8, per channel
        ({"method": "compressed-tensors", "bits": 8, "group_size": -1, "sym": True, "weight_scale": "channel", "act_bits": 8},
         [256 * 512, 512 * 4]),
        # bitsandbytes nf4, block 64, float32 absmax
        ({"method": "bitsandbytes", "bits": 4, "group_size": 64, "double_quant": False}, [256 * 512 // 2, 256 * 512 // 64 * 4]),
        # bitsandbytes 8-bit: int8 weight + per-row absmax
        ({"method": "bitsandbytes", "bits": 8, "group_size": -1, "double_quant": False}, [256 * 512, 512 * 4]),
        # GPTQ 4-bit, group 128, act-order: qweight, qzeros, scales, g_idx
        ({"method": "gptq", "bits": 4, "group_size": 128, "desc_act": True, "sym": True},
         [256 // 8 * 512 * 4, 2 * 512 // 8 * 4, 2 * 512 * 2, 256 * 4]),
    ],
)
def test_quantized_linear_tensors(quant, expected):
    assert _linear_tensor_bytes(256, 512, quant, False, 2) == expected


@pytest.mark.parametrize(
    ("qc", "method", "bits"),
    [
        ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}, "fp8", 8),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {"num_bits": 4, "strategy": "group",
          "group_size": 128, "symmetric": True, "type": "int"}}}}, "compressed-tensors", 4),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {"num_bits": 8, "strategy": "channel",
          "symmetric": True, "type": "float"}, "input_activations": {"num_bits": 8, "dynamic": True}}}}, "compressed-tensors", 8),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "bitsandbytes", 4),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "bitsandbytes", 8),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128, "sym": True, "desc_act": False}, "gptq", 8),
    ],
)
def test_quantization_configs_are_read(qc, method, bits):
    arch = resolve_model_config({"model_config": _tiny(model_type="llama", quantization_config=qc)}, "t")
    assert (arch["quantization"]["method"], arch["quantization"]["bits"]) == (method, bits)
    # and the planner plans it on the pinned release (bitsandbytes: on 0.11.0)
    inst = {"model_config": _tiny(model_type="llama", quantization_config=qc), "max_model_len": 512}
    if method == "bitsandbytes":
        inst["vllm_version"] = "0.11.0"
    assert plan_instance(inst, RTX4090)["fits"] is True


def test_quantized_smaller_than_dense_for_the_same_model():
    base = {"max_model_len": 2048}
    dense = plan_instance(dict(base, model="Qwen/Qwen3-8B"), RTX4090)["weights_gib"]
    fp8 = plan_instance(dict(base, model="Qwen/Qwen3-8B-FP8"), RTX4090)["weights_gib"]
    awq = plan_instance(dict(base, model="Qwen/Qwen3-8B-AWQ"), RTX4090)["weights_gib"]
    assert dense > fp8 > awq
    # the 16-bit embeddings (151936 x 4096) and, untied, the LM head stay in every variant
    assert awq > 2 * 151936 * 4096 * 2 / 2**30


def test_gemma3_multimodal_counts_the_vision_tower():
    # google/gemma-3-4b-it is advertised at 4.30e9 parameters (its model card), bf16 weights
    plan = plan_instance({"model": "google/gemma-3-4b-it", "max_model_len": 8192}, RTX4090)
    params = plan["weights_gib"] * 2**30 / 2
    assert params == pytest.approx(4.30e9, rel=0.01)
    assert 0.7 < plan["vision_weights_gib"] < 0.85  # SigLIP-So400m: about 0.4e9 parameters


def test_recurrent_layers_are_refused_with_the_reason():
    cfg = _tiny(model_type="hybrid", layer_types=["mamba", "full_attention"])
    with pytest.raises(PlannerError, match="recurrent state"):
        resolve_model_config({"model_config": cfg}, "t")


def test_any_catalog_model_plans_without_a_family_list():
    for model_id in load_model_catalog():
        plan_instance({"model": model_id, "max_model_len": 1024, "vllm_version": "0.11.0"}, RTX4090)
