"""Model catalog loading and model architecture resolution.

``resolve_model_config`` turns an instance's ``model`` (a catalog id) or ``model_config`` (a
Hugging Face ``config.json`` as a dict) into one normalized architecture dict that the memory
accounting reads. Only dense decoder-only transformers (Llama, Qwen2, Mistral and their kin)
are modelled; mixture-of-experts and multimodal configs are refused with a clear error rather
than planned wrongly.
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Any

import yaml

from .errors import PlannerError

# filter_plugins/libra_planner/models.py -> repository root is two directories up.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL_CATALOG = os.path.join(REPO_ROOT, "catalog", "models.yml")
DEFAULT_ENGINE_CATALOG = os.path.join(REPO_ROOT, "catalog", "engine.yml")

# Families whose vLLM implementation is a dense Llama-style decoder: merged QKV projection,
# merged gate/up projection (SwiGLU MLP), RMSNorm before attention and MLP, rotary embeddings.
# Qwen2 adds a bias to the QKV projection (vllm/model_executor/models/qwen2.py, qkv_proj bias=True).
_DENSE_FAMILIES = {
    "llama": {"qkv_bias": False},
    "mistral": {"qkv_bias": False},
    "qwen2": {"qkv_bias": True},
}
_SUPPORTED_QUANT = ("awq", "gptq")
_MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_intermediate_size")


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
    """Return ``catalog/engine.yml`` (the pinned vLLM version and its engine facts), cached."""
    return _load_yaml(os.path.abspath(path or DEFAULT_ENGINE_CATALOG))


def _positive_int(cfg: dict, key: str, filter_name: str, prefix: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PlannerError(filter_name, f"{prefix}{key}", f"must be a positive integer (got {value!r})")
    return value


def _family(cfg: dict, entry_family: str | None) -> str:
    if entry_family:
        return str(entry_family)
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type:
        return model_type
    for arch in cfg.get("architectures") or []:
        name = str(arch).lower()
        for family in _DENSE_FAMILIES:
            if name.startswith(family):
                return family
    return ""


def _normalize_quant(raw: Any, filter_name: str, prefix: str) -> dict | None:
    """Map a catalog ``quantization`` block or an HF ``quantization_config`` to one shape."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PlannerError(filter_name, prefix.rstrip("."), f"must be a mapping (got {type(raw).__name__})")
    method = str(raw.get("method", raw.get("quant_method", ""))).lower()
    if method not in _SUPPORTED_QUANT:
        raise PlannerError(
            filter_name,
            f"{prefix}quant_method",
            f"quantization {method or '(none given)'!r} is not modelled; supported: {', '.join(_SUPPORTED_QUANT)}",
        )
    bits = raw.get("bits", raw.get("w_bit"))
    if isinstance(bits, bool) or bits not in (2, 3, 4, 8):
        raise PlannerError(filter_name, f"{prefix}bits", f"must be one of 2, 3, 4, 8 (got {bits!r})")
    group = raw.get("group_size", raw.get("q_group_size", -1))
    if isinstance(group, bool) or not isinstance(group, int) or (group <= 0 and group != -1):
        raise PlannerError(filter_name, f"{prefix}group_size", f"must be a positive integer or -1 (got {group!r})")
    not_converted = raw.get("modules_not_converted", raw.get("modules_to_not_convert")) or []
    return {
        "method": method,
        "bits": int(bits),
        "group_size": int(group),
        "desc_act": bool(raw.get("desc_act", False)),
        "zero_point": bool(raw.get("zero_point", True)),
        "modules_not_converted": [str(m) for m in not_converted],
        "verified": bool(raw.get("verified", True)),
    }


def _normalize(model_id: str, cfg: dict, quant_raw: Any, entry_family: str | None, filter_name: str, prefix: str) -> dict:
    if not isinstance(cfg, dict):
        raise PlannerError(filter_name, prefix.rstrip(".") or "model_config", "must be a mapping (a config.json dict)")
    if "text_config" in cfg or "vision_config" in cfg:
        raise PlannerError(
            filter_name,
            f"{prefix}text_config",
            "multimodal configs are not modelled (the vision tower's weights and encoder profile "
            "are not accounted); plan the text model's config instead",
        )
    for key in _MOE_KEYS:
        if cfg.get(key):
            raise PlannerError(filter_name, f"{prefix}{key}", "mixture-of-experts models are not modelled")
    family = _family(cfg, entry_family)
    if family not in _DENSE_FAMILIES:
        raise PlannerError(
            filter_name,
            f"{prefix}model_type",
            f"model family {family or '(unknown)'!r} is not modelled; supported: {', '.join(sorted(_DENSE_FAMILIES))}",
        )
    hidden = _positive_int(cfg, "hidden_size", filter_name, prefix)
    heads = _positive_int(cfg, "num_attention_heads", filter_name, prefix)
    kv_heads = cfg.get("num_key_value_heads", heads)
    if isinstance(kv_heads, bool) or not isinstance(kv_heads, int) or kv_heads <= 0:
        raise PlannerError(filter_name, f"{prefix}num_key_value_heads", f"must be a positive integer (got {kv_heads!r})")
    head_dim = cfg.get("head_dim") or hidden // heads
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0:
        raise PlannerError(filter_name, f"{prefix}head_dim", f"must be a positive integer (got {head_dim!r})")
    torch_dtype = str(cfg.get("torch_dtype", cfg.get("dtype", "float16"))).replace("torch.", "")
    partial = cfg.get("partial_rotary_factor", 1.0)
    quant_src = quant_raw if quant_raw is not None else cfg.get("quantization_config")
    quant_prefix = "quantization." if quant_raw is not None else f"{prefix}quantization_config."
    return {
        "id": model_id,
        "family": family,
        "hidden_size": hidden,
        "intermediate_size": _positive_int(cfg, "intermediate_size", filter_name, prefix),
        "num_layers": _positive_int(cfg, "num_hidden_layers", filter_name, prefix),
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "rotary_dim": int(head_dim * float(partial)),
        "vocab_size": _positive_int(cfg, "vocab_size", filter_name, prefix),
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "max_position_embeddings": _positive_int(cfg, "max_position_embeddings", filter_name, prefix),
        "torch_dtype": torch_dtype,
        "qkv_bias": bool(cfg.get("attention_bias", _DENSE_FAMILIES[family]["qkv_bias"])),
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
        return _normalize(name, config, None, None, filter_name, "model_config.")
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
    return _normalize(model_id, entry.get("config"), entry.get("quantization"), entry.get("family"), filter_name, "config.")
