"""Model catalog loading and model architecture resolution.

``resolve_model_config`` turns an instance's ``model`` (a catalog id) or ``model_config`` (a
Hugging Face ``config.json`` as a dict) into one normalized architecture dict that the memory
accounting reads. Everything is derived from the config's fields (head_dim, biases, q/k norms, tied embeddings,
sliding-window layers, mixture-of-experts, a vision tower, the quantization scheme), not from a
list of families; only layer kinds whose state the planner cannot size (state-space, linear
attention) are refused, with the reason.
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Any

import yaml

from .errors import PlannerError
from .validate import validate

# filter_plugins/libra_planner/models.py -> repository root is two directories up.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL_CATALOG = os.path.join(REPO_ROOT, "catalog", "models.yml")
DEFAULT_ENGINE_CATALOG = os.path.join(REPO_ROOT, "catalog", "engine.yml")

# What vLLM's model classes do when config.json is silent (read in vllm/model_executor/models/
# at v0.11.0 and in the 0.32.0 package): qwen2.py builds qkv_proj with bias=True; qwen3.py and
# qwen3_moe.py add per-head RMSNorm on q and k (q_norm/k_norm) and no qkv bias; gemma3.py adds
# q_norm/k_norm and four norms per layer (input, post-attention, pre- and post-feedforward);
# gemma3 and gemma2 scale the embedding and tie it to the LM head. Any other model type is
# planned from its fields alone (attention_bias, mlp_bias, head_dim, ... with the Llama-style
# defaults of transformers' PretrainedConfig).
_CLASS_DEFAULTS = {
    "qwen2": {"qkv_bias": True},
    "qwen2_moe": {"qkv_bias": True},
    "qwen3": {"qk_norm": True},
    "qwen3_moe": {"qk_norm": True},
    "gemma3_text": {"qk_norm": True, "norms_per_layer": 4},
    "gemma3": {"qk_norm": True, "norms_per_layer": 4},
    "gemma2": {"norms_per_layer": 4},
}
# Architectures that are not decoder-only transformers with one KV cache per attention layer:
# state-space and linear-attention layers keep a fixed state that the planner does not size.
_UNMODELLED_LAYER_TYPES = ("mamba", "linear_attention", "conv", "recurrent")
_MOE_EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")
_QUANT_METHODS = ("awq", "gptq", "fp8", "compressed-tensors", "bitsandbytes")


@functools.lru_cache(maxsize=8)
def _load_yaml(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load_model_catalog(path: str | None = None) -> dict:
    """Return the ``models`` mapping of ``catalog/models.yml`` (cached per path)."""
    data = _load_yaml(os.path.abspath(path or DEFAULT_MODEL_CATALOG))
    models = data.get("models")
    if not isinstance(models, dict):
        raise ValueError(f"{path or DEFAULT_MODEL_CATALOG}: expected a 'models' mapping")
    return models


def load_engine_catalog(path: str | None = None) -> dict:
    """Return ``catalog/engine.yml`` (vLLM releases and the default pin), validated against
    schemas/engine.schema.json, cached."""
    return _validated_engine(os.path.abspath(path or DEFAULT_ENGINE_CATALOG))


@functools.lru_cache(maxsize=4)
def _validated_engine(path: str) -> dict:
    return validate(_load_yaml(path), "engine", filter_name="vllm_engine_build")


def _positive_int(cfg: dict, key: str, filter_name: str, prefix: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PlannerError(filter_name, f"{prefix}{key}", f"must be a positive integer (got {value!r})")
    return value


def _int_or(cfg: dict, key: str, default: Any, filter_name: str, prefix: str) -> Any:
    value = cfg.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PlannerError(filter_name, f"{prefix}{key}", f"must be a non-negative integer (got {value!r})")
    return value


def _normalize_quant(raw: Any, filter_name: str, prefix: str) -> dict | None:
    """Map a catalog ``quantization`` block or an HF ``quantization_config`` to one shape.

    Shapes: ``{method, bits, group_size, desc_act, sym, zero_point, modules_not_converted,
    verified, weight_scale (fp8: tensor|channel|block), block (fp8 block size), act_bits,
    double_quant (bitsandbytes), in_flight (bitsandbytes without a checkpoint)}``.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PlannerError(filter_name, prefix.rstrip("."), f"must be a mapping (got {type(raw).__name__})")
    method = str(raw.get("method", raw.get("quant_method", ""))).lower().replace("_marlin", "")
    if method in ("auto_gptq",):
        method = "gptq"
    if method in ("auto_awq",):
        method = "awq"
    if method not in _QUANT_METHODS:
        raise PlannerError(
            filter_name,
            f"{prefix}quant_method",
            f"quantization {method or '(none given)'!r} is not one the planner sizes; sized: {', '.join(_QUANT_METHODS)}",
        )
    not_converted = raw.get("modules_not_converted", raw.get("modules_to_not_convert", raw.get("ignore"))) or []
    out: dict[str, Any] = {
        "method": method,
        "bits": 16,
        "group_size": -1,
        "desc_act": bool(raw.get("desc_act", False)),
        "sym": bool(raw.get("sym", True)),
        "zero_point": bool(raw.get("zero_point", True)),
        "modules_not_converted": [str(m) for m in not_converted],
        "verified": bool(raw.get("verified", True)),
        "weight_scale": None,
        "block": None,
        "act_bits": 16,
        "double_quant": False,
        "in_flight": bool(raw.get("in_flight", False)),
        "act_static": False,
    }
    if method in ("awq", "gptq"):
        bits = raw.get("bits", raw.get("w_bit"))
        if isinstance(bits, bool) or bits not in (2, 3, 4, 8):
            raise PlannerError(filter_name, f"{prefix}bits", f"must be one of 2, 3, 4, 8 (got {bits!r})")
        group = raw.get("group_size", raw.get("q_group_size", -1))
        if isinstance(group, bool) or not isinstance(group, int) or (group <= 0 and group != -1):
            raise PlannerError(filter_name, f"{prefix}group_size", f"must be a positive integer or -1 (got {group!r})")
        out.update(bits=int(bits), group_size=int(group))
        if method == "awq":
            out["sym"] = not out["zero_point"]
    elif method == "fp8":
        # transformers' FineGrainedFP8Config / vLLM Fp8Config: weight_block_size [128, 128] for
        # block scales; activation_scheme static|dynamic; per-tensor scale otherwise.
        block = raw.get("weight_block_size")
        out.update(bits=8, weight_scale="block" if block else str(raw.get("weight_scale", "tensor")),
                   block=list(block) if block else None, act_bits=8 if raw.get("activation_scheme") else 16,
                   act_static=raw.get("activation_scheme") == "static")
    elif method == "compressed-tensors":
        groups = raw.get("config_groups") or {}
        if not isinstance(groups, dict) or not groups:
            raise PlannerError(filter_name, f"{prefix}config_groups", "compressed-tensors needs config_groups (the checkpoint's scheme)")
        scheme = next(iter(groups.values()))
        weights = scheme.get("weights") or {}
        acts = scheme.get("input_activations") or {}
        bits = weights.get("num_bits")
        if bits not in (4, 8):
            raise PlannerError(filter_name, f"{prefix}config_groups.weights.num_bits", f"must be 4 or 8 (got {bits!r})")
        strategy = str(weights.get("strategy", "channel"))
        out.update(
            bits=int(bits),
            group_size=int(weights.get("group_size") or -1) if strategy == "group" else -1,
            sym=bool(weights.get("symmetric", True)),
            zero_point=not bool(weights.get("symmetric", True)),
            weight_scale=strategy,
            act_bits=int(acts.get("num_bits", 16)) if acts else 16,
            act_static=bool(acts) and not acts.get("dynamic", False),
            float_weights=str(weights.get("type", "int")) == "float",
        )
    else:  # bitsandbytes
        if raw.get("load_in_8bit") or raw.get("bits") == 8:
            out.update(bits=8)
        else:
            out.update(bits=4, double_quant=bool(raw.get("bnb_4bit_use_double_quant", raw.get("double_quant", False))),
                       group_size=int(raw.get("blocksize", 64)))
    return out


def _layer_kinds(cfg: dict, num_layers: int) -> list[int | None]:
    """Per decoder layer: None for full attention, else its sliding window (tokens).

    From ``layer_types`` when config.json lists them, else from ``sliding_window`` with
    ``sliding_window_pattern`` (every Nth layer global, Gemma 2/3) or ``max_window_layers``
    with ``use_sliding_window`` (Qwen2: layers >= max_window_layers slide); vLLM builds a
    SlidingWindowSpec for those layers (vllm/v1/kv_cache_interface.py).
    """
    window = cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == num_layers:
        return [window if str(t) == "sliding_attention" and window else None for t in types]
    if not window:
        return [None] * num_layers
    if cfg.get("use_sliding_window") is False:
        return [None] * num_layers
    pattern = cfg.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 0:
        return [None if (i + 1) % pattern == 0 else window for i in range(num_layers)]
    if "use_sliding_window" in cfg:  # Qwen2-style: only layers from max_window_layers on
        first = int(cfg.get("max_window_layers", num_layers))
        return [window if i >= first else None for i in range(num_layers)]
    return [window] * num_layers  # Mistral-style: every layer slides


def derived_max_model_len(cfg: dict) -> int:
    """The model's own maximum length, as vLLM's ``_get_and_verify_max_len`` derives it.

    The smallest of the length keys present (max_position_embeddings, n_positions,
    max_seq_len, seq_length, model_max_length, max_sequence_length, max_seq_length), times the
    RoPE ``factor`` unless the rope type already scales max_position_embeddings (su, longrope,
    llama3, yarn and its variants) or the model is Gemma 3; 2048 when no key is present
    (vllm/config/model.py at 0.32.0).
    """
    keys = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
            "max_sequence_length", "max_seq_length")
    found = [int(cfg[k]) for k in keys if isinstance(cfg.get(k), int) and not isinstance(cfg.get(k), bool)]
    length = min(found) if found else 2048
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if isinstance(rope, dict) and "gemma3" not in str(cfg.get("model_type", "")):
        rope_type = str(rope.get("rope_type", rope.get("type", "default")))
        if rope_type not in ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling"):
            factor = rope.get("factor")
            if isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 0:
                length = int(length * factor)
    return length


def _vision_tower(cfg: dict, text_hidden: int, filter_name: str, prefix: str) -> dict | None:
    """Parameter count and profile size of a vision tower (ViT/SigLIP-style ``vision_config``)."""
    vision = cfg.get("vision_config")
    if not isinstance(vision, dict):
        return None
    hidden = _int_or(vision, "hidden_size", _int_or(vision, "embed_dim", 0, filter_name, prefix), filter_name, prefix)
    layers = _int_or(vision, "num_hidden_layers", _int_or(vision, "depth", 0, filter_name, prefix), filter_name, prefix)
    inter = _int_or(vision, "intermediate_size", 4 * hidden, filter_name, prefix)
    patch = _int_or(vision, "patch_size", 14, filter_name, prefix)
    image = _int_or(vision, "image_size", 224, filter_name, prefix)
    channels = _int_or(vision, "num_channels", 3, filter_name, prefix)
    if not hidden or not layers:
        raise PlannerError(filter_name, f"{prefix}vision_config.hidden_size",
                           "a vision_config needs hidden_size (or embed_dim) and num_hidden_layers (or depth)")
    patches = (image // patch) ** 2
    # per layer: q, k, v, o (h x h, with biases), fc1/fc2 (h x i, with biases), two LayerNorms (weight + bias)
    per_layer = 4 * (hidden * hidden + hidden) + 2 * hidden * inter + inter + hidden + 4 * hidden
    params = layers * per_layer + channels * patch * patch * hidden + hidden + patches * hidden + 2 * hidden
    # the projector into the text model (Gemma 3: RMSNorm + hidden x text_hidden; LLaVA: two linears)
    params += hidden * text_hidden + hidden
    tokens = int(cfg.get("mm_tokens_per_image") or patches)
    return {"params": params, "hidden_size": hidden, "intermediate_size": inter, "patches": patches,
            "tokens_per_item": tokens}


def _moe(cfg: dict, num_layers: int, filter_name: str, prefix: str) -> dict | None:
    experts = next((cfg[k] for k in _MOE_EXPERT_KEYS if cfg.get(k)), None)
    if not experts:
        return None
    if isinstance(experts, bool) or not isinstance(experts, int):
        raise PlannerError(filter_name, f"{prefix}num_experts", f"must be an integer (got {experts!r})")
    inter = cfg.get("moe_intermediate_size") or cfg.get("intermediate_size")
    shared_inter = int(cfg.get("shared_expert_intermediate_size") or 0)
    shared_count = int(cfg.get("n_shared_experts") or 0)
    if shared_count and not shared_inter:
        shared_inter = shared_count * int(inter)
    # Which layers are sparse: every decoder_sparse_step-th (Qwen2/3-MoE) minus mlp_only_layers,
    # or from first_k_dense_replace on (DeepSeek); all layers otherwise (Mixtral).
    step = int(cfg.get("decoder_sparse_step") or 1)
    dense_only = set(cfg.get("mlp_only_layers") or [])
    first = int(cfg.get("first_k_dense_replace") or 0)
    sparse = [i for i in range(num_layers) if i >= first and (i + 1) % step == 0 and i not in dense_only]
    return {"experts": experts, "intermediate_size": int(inter), "shared_intermediate_size": shared_inter,
            "shared_expert_gate": "shared_expert_intermediate_size" in cfg, "sparse_layers": len(sparse),
            "top_k": int(cfg.get("num_experts_per_tok") or 1)}


def _normalize(model_id: str, cfg: dict, quant_raw: Any, filter_name: str, prefix: str) -> dict:
    if not isinstance(cfg, dict):
        raise PlannerError(filter_name, prefix.rstrip(".") or "model_config", "must be a mapping (a config.json dict)")
    outer = cfg
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    tprefix = f"{prefix}text_config." if text is not cfg else prefix
    model_type = str(text.get("model_type") or cfg.get("model_type") or "").lower()
    for kind in text.get("layer_types") or []:
        if any(word in str(kind) for word in _UNMODELLED_LAYER_TYPES):
            raise PlannerError(
                filter_name, f"{tprefix}layer_types",
                f"layer type {kind!r} keeps a recurrent state the planner does not size (hybrid state-space "
                "or linear-attention model); vLLM runs it, so plan it by measuring a start instead",
            )
    hidden = _positive_int(text, "hidden_size", filter_name, tprefix)
    heads = _positive_int(text, "num_attention_heads", filter_name, tprefix)
    kv_heads = text.get("num_key_value_heads") or heads
    if isinstance(kv_heads, bool) or not isinstance(kv_heads, int) or kv_heads <= 0:
        raise PlannerError(filter_name, f"{tprefix}num_key_value_heads", f"must be a positive integer (got {kv_heads!r})")
    head_dim = text.get("head_dim") or hidden // heads
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0:
        raise PlannerError(filter_name, f"{tprefix}head_dim", f"must be a positive integer (got {head_dim!r})")
    layers = _positive_int(text, "num_hidden_layers", filter_name, tprefix)
    defaults = _CLASS_DEFAULTS.get(model_type, {})
    torch_dtype = str(outer.get("torch_dtype") or outer.get("dtype") or text.get("torch_dtype") or text.get("dtype") or "float16")
    torch_dtype = torch_dtype.replace("torch.", "")
    partial = text.get("partial_rotary_factor", 1.0)
    quant_src = quant_raw if quant_raw is not None else outer.get("quantization_config", text.get("quantization_config"))
    quant_prefix = "quantization." if quant_raw is not None else f"{prefix}quantization_config."
    max_pos = text.get("max_position_embeddings")
    derived = derived_max_model_len(dict(text, model_type=model_type))
    tie = outer.get("tie_word_embeddings", text.get("tie_word_embeddings", model_type.startswith("gemma")))
    moe = _moe(text, layers, filter_name, tprefix)
    intermediate = text.get("intermediate_size") or (moe["intermediate_size"] if moe else None)
    if not isinstance(intermediate, int) or isinstance(intermediate, bool) or intermediate <= 0:
        raise PlannerError(filter_name, f"{tprefix}intermediate_size", f"must be a positive integer (got {intermediate!r})")
    return {
        "id": model_id,
        "family": model_type or "generic",
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_layers": layers,
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "rotary_dim": int(head_dim * float(partial)),
        "vocab_size": _positive_int(text if text.get("vocab_size") else outer, "vocab_size", filter_name, tprefix),
        "tie_word_embeddings": bool(tie),
        "max_position_embeddings": int(max_pos) if isinstance(max_pos, int) else derived,
        "derived_max_model_len": derived,
        "torch_dtype": torch_dtype,
        "qkv_bias": bool(text.get("attention_bias", defaults.get("qkv_bias", False))),
        "mlp_bias": bool(text.get("mlp_bias", False)),
        "qk_norm": bool(defaults.get("qk_norm", False)),
        "norms_per_layer": int(defaults.get("norms_per_layer", 2)),
        "layer_windows": _layer_kinds(text, layers),
        "moe": moe,
        "vision": _vision_tower(outer, hidden, filter_name, prefix),
        "quantization": _normalize_quant(quant_src, filter_name, quant_prefix),
    }


def resolve_model_config(instance: dict, filter_name: str) -> dict:
    """Normalized architecture of ``instance['model_config']`` or of the catalog entry ``instance['model']``.

    ``model_config`` wins when both are given (``model`` then only names the model).
    """
    if not isinstance(instance, dict):
        raise PlannerError(filter_name, "instance", f"must be a mapping (got {type(instance).__name__})")
    model_id = instance.get("model")
    config = instance.get("model_config")
    if config is not None:
        name = str(model_id) if model_id else str(config.get("_name_or_path", "model_config")) if isinstance(config, dict) else "model_config"
        return _normalize(name, config, None, filter_name, "model_config.")
    if model_id is None or model_id == "":
        raise PlannerError(filter_name, "model", "missing: give a catalog model id or a model_config (config.json dict)")
    if not isinstance(model_id, str):
        raise PlannerError(filter_name, "model", f"must be a string (got {type(model_id).__name__})")
    catalog = load_model_catalog()
    entry = catalog.get(model_id)
    if entry is None:
        close = difflib.get_close_matches(model_id, list(catalog), n=3, cutoff=0.5)
        hint = f"; close catalog ids: {', '.join(close)}" if close else f"; catalog ids include: {', '.join(sorted(catalog)[:3])}"
        raise PlannerError(
            filter_name,
            "model",
            f"unknown model {model_id!r}: not in catalog/models.yml and no model_config given{hint}",
        )
    config = entry.get("config")
    if isinstance(config, dict) and "model_type" not in config and entry.get("family"):
        config = dict(config, model_type=entry["family"])
    return _normalize(model_id, config, entry.get("quantization"), filter_name, "config.")
