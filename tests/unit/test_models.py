"""Model catalog and architecture resolution."""

from __future__ import annotations

import pytest
from libra_planner import PlannerError, load_model_catalog, plan_instance, resolve_model_config
from libra_planner.models import load_engine_catalog

CATALOG = load_model_catalog()

# The ids the catalog must cover (the tier catalog's slots and the operator's guide name them).
REQUIRED = [
    f"Qwen/Qwen2.5-{size}-Instruct{suffix}"
    for size in ("0.5B", "1.5B", "3B", "7B")
    for suffix in ("", "-AWQ", "-GPTQ-Int4", "-GPTQ-Int8")
] + [
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "meta-llama/Llama-3.1-8B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    # issue 8: Qwen3, Qwen3 AWQ, an FP8 model, a bitsandbytes model, Gemma 3 multimodal
    "Qwen/Qwen3-8B",
    "Qwen/Qwen3-8B-AWQ",
    "Qwen/Qwen3-8B-FP8",
    "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit",
    "google/gemma-3-4b-it",
]


@pytest.mark.parametrize("model_id", REQUIRED)
def test_catalog_covers_required_models(model_id):
    assert model_id in CATALOG


@pytest.mark.parametrize("model_id", sorted(CATALOG))
def test_every_entry_resolves_and_cites_its_source(model_id):
    entry = CATALOG[model_id]
    assert entry["source"].startswith("https://huggingface.co/")
    arch = resolve_model_config({"model": model_id}, "vllm_memory_plan")
    assert arch["num_heads"] % arch["num_kv_heads"] == 0
    text = entry["config"].get("text_config", entry["config"])
    assert arch["hidden_size"] == arch["num_heads"] * arch["head_dim"] or "head_dim" in text
    quant = entry.get("quantization")
    if quant is not None:
        assert quant["method"] in ("awq", "gptq", "fp8", "bitsandbytes", "compressed-tensors")
        assert isinstance(quant["verified"], bool)
        if not quant["verified"]:
            assert quant.get("note") or entry.get("verified") is False, "an unverified entry says what is unverified"


def test_no_dead_two_bit_id():
    """Qwen/Qwen2.5-7B-Instruct-GPTQ-Int2 never existed publicly (issue 8): not in the catalog."""
    assert "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int2" not in CATALOG


@pytest.mark.parametrize(
    ("model_id", "fields"),
    [
        # values from each model's config.json (the entry's `source`)
        ("Qwen/Qwen2.5-3B-Instruct", {"hidden_size": 2048, "num_layers": 36, "num_kv_heads": 2, "head_dim": 128,
                                      "tie_word_embeddings": True, "qkv_bias": True}),
        ("Qwen/Qwen2.5-7B-Instruct", {"hidden_size": 3584, "num_layers": 28, "num_kv_heads": 4, "vocab_size": 152064,
                                      "tie_word_embeddings": False}),
        ("meta-llama/Llama-3.2-1B-Instruct", {"head_dim": 64, "num_kv_heads": 8, "tie_word_embeddings": True,
                                              "qkv_bias": False}),
        ("mistralai/Mistral-7B-Instruct-v0.3", {"vocab_size": 32768, "num_layers": 32, "num_kv_heads": 8}),
    ],
)
def test_resolved_architecture(model_id, fields):
    arch = resolve_model_config({"model": model_id}, "vllm_memory_plan")
    for key, value in fields.items():
        assert arch[key] == value, key


def _hf_config(model_id: str) -> dict:
    """The catalog entry written back as a Hugging Face config.json dict."""
    entry = CATALOG[model_id]
    cfg = dict(entry["config"], model_type=entry["family"])
    quant = entry.get("quantization")
    if quant:
        cfg["quantization_config"] = {"quant_method": quant["method"], "bits": quant["bits"],
                                      "group_size": quant["group_size"], "desc_act": quant.get("desc_act", False)}
    return cfg


@pytest.mark.parametrize("model_id", ["Qwen/Qwen2.5-3B-Instruct-AWQ", "Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4", "meta-llama/Llama-3.1-8B-Instruct"])
def test_model_config_plans_like_the_catalog_entry(model_id, rtx3060):
    settings = {"gpu_memory_utilization": 0.8, "max_model_len": 2048}
    by_id = plan_instance(dict(settings, model=model_id), rtx3060)
    by_cfg = plan_instance(dict(settings, model_config=_hf_config(model_id)), rtx3060)
    for key in ("weights_gib", "activation_gib", "kv_cache_tokens", "fits"):
        assert by_cfg[key] == by_id[key], key


def test_awq_config_with_autoawq_field_names():
    # AutoAWQ writes w_bit / q_group_size in some checkpoints' quantization_config
    cfg = dict(_hf_config("Qwen/Qwen2.5-3B-Instruct"), quantization_config={"quant_method": "awq", "w_bit": 4, "q_group_size": 128})
    arch = resolve_model_config({"model_config": cfg}, "vllm_memory_plan")
    assert arch["quantization"]["bits"] == 4 and arch["quantization"]["group_size"] == 128


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_experts": "many", "moe_intermediate_size": 1408}, "model_config.num_experts"),
        ({"text_config": {"hidden_size": 0}, "vision_config": {}}, "model_config.text_config.hidden_size"),
        ({"vision_config": {"patch_size": 14}}, "model_config.vision_config.hidden_size"),
        ({"quantization_config": {"quant_method": "hqq"}}, "model_config.quantization_config.quant_method"),
        ({"quantization_config": {"quant_method": "gptq", "bits": 5, "group_size": 128}}, "model_config.quantization_config.bits"),
        ({"quantization_config": {"quant_method": "compressed-tensors"}}, "model_config.quantization_config.config_groups"),
        ({"layer_types": ["mamba"] * 24}, "model_config.layer_types"),
        ({"hidden_size": "big"}, "model_config.hidden_size"),
        ({"num_key_value_heads": -1}, "model_config.num_key_value_heads"),
    ],
)
def test_unsupported_or_bad_model_config(change, field):
    cfg = dict(_hf_config("Qwen/Qwen2.5-0.5B-Instruct"), **change)
    with pytest.raises(PlannerError) as err:
        resolve_model_config({"model_config": cfg}, "vllm_memory_plan")
    assert str(err.value).startswith(f"vllm_memory_plan: field '{field}': "), str(err.value)


def test_missing_model_and_config():
    with pytest.raises(PlannerError, match=r"^vllm_memory_plan: field 'model': missing"):
        resolve_model_config({"gpu_memory_utilization": 0.5}, "vllm_memory_plan")


def test_tied_embeddings_counted_once(rtx3060):
    tied = _hf_config("Qwen/Qwen2.5-0.5B-Instruct")
    untied = dict(tied, tie_word_embeddings=False)
    settings = {"gpu_memory_utilization": 0.5, "max_model_len": 1024}
    a = plan_instance(dict(settings, model_config=tied), rtx3060)["weights_gib"]
    b = plan_instance(dict(settings, model_config=untied), rtx3060)["weights_gib"]
    # one 151936 x 896 fp16 matrix more (0.2536 GiB, allocator-rounded)
    assert b - a == pytest.approx(151936 * 896 * 2 / 2**30, abs=1e-3)


def test_engine_catalog_pins_an_image_matching_its_version():
    engine = load_engine_catalog()
    assert engine["image"] == f"vllm/vllm-openai:v{engine['vllm_version']}"
    assert engine["vllm_version"] == engine["default_release"]
    # the flat keys the roles read are the default release's first build
    first = engine["releases"][engine["default_release"]]["builds"][0]
    assert (engine["image"], engine["min_driver_version"], engine["cuda_version"]) == (
        first["image"], first["min_driver_version"], first["cuda"])
    assert engine["releases"]["0.11.0"]["cuda_graphs_in_budget"] is False  # outside the budget before v0.21
    assert engine["releases"]["0.32.0"]["cuda_graphs_in_budget"] is True
    assert engine["block_size"] == 16


@pytest.mark.parametrize(
    ("not_converted", "unquantized_layers"),
    [
        ([], 0),
        (["lm_head"], 0),  # lm_head is never quantized here anyway
        (["mlp.down_proj"], 1),
        (["model.layers.0.self_attn"], 2),  # qkv + o
    ],
)
def test_modules_not_converted_stay_16_bit(not_converted, unquantized_layers, rtx3060):
    cfg = dict(_hf_config("Qwen/Qwen2.5-3B-Instruct"),
               quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128, "modules_to_not_convert": not_converted})
    base = dict(_hf_config("Qwen/Qwen2.5-3B-Instruct"),
                quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})
    settings = {"gpu_memory_utilization": 0.8, "max_model_len": 1024}
    with_list = plan_instance(dict(settings, model_config=cfg), rtx3060)["weights_gib"]
    without = plan_instance(dict(settings, model_config=base), rtx3060)["weights_gib"]
    assert (with_list > without) == (unquantized_layers > 0)
