"""The what-if search: when a tier does not fit, what would, each answer planned to be true.

One reason to change: which alternatives the plan proposes (a shorter context, the lowest-bit
7B for the large slot, other tiers on the same card, a bigger card).
"""

from __future__ import annotations

import copy

from .catalogs import gpu_from_preset, load_gpu_presets, tier_names
from .errors import PlannerError
from .resolve import build_tier, resolve_one

# Shortest context the "what would fit" search proposes.
MIN_SUGGESTED_LEN = 256


def fits_quietly(catalog, tier, gpu, models, overrides, filter_name) -> dict | None:
    """Resolve for a what-if; ``None`` when the what-if itself is invalid (bad dtype for the card...)."""
    try:
        return resolve_one(catalog, tier, gpu, models, overrides, filter_name)
    except PlannerError:
        return None


def with_override(overrides: dict | None, tier: str, **knobs) -> dict:
    merged = copy.deepcopy(overrides or {})
    merged.setdefault(tier, {}).update(knobs)
    return merged


def gpu_label(gpu: dict) -> str:
    return f"{gpu.get('name') or 'the GPU'} ({gpu['memory_total_mib'] / 1024:.1f} GiB)"


def suggestions(catalog, tier, gpu, models, overrides, filter_name) -> list[str]:
    """What would fit instead, each computed by planning it."""
    found: list[str] = []
    built = build_tier(catalog, tier, models, overrides, filter_name)
    # 1. a shorter context, same tier and card
    length = min(int(inst["max_model_len"]) for inst in built["instances"] if inst.get("max_model_len")) if any(
        inst.get("max_model_len") for inst in built["instances"]) else 65536
    candidate = length // 2
    while candidate >= MIN_SUGGESTED_LEN:
        result = fits_quietly(catalog, tier, gpu, models, with_override(overrides, tier, max_model_len=candidate), filter_name)
        if result and result["fits"]:
            found.append(f"a shorter context fits: max_model_len {candidate} (vllm_tier_overrides.{tier}.max_model_len: {candidate})")
            break
        candidate //= 2
    # 2. the lowest-bit 7B (the int2 slot) in place of the large model
    slots = {inst["model_slot"] for inst in built["instances"]}
    int2_model = {**catalog.get("models", {}), **(models or {})}.get("int2")
    if "large" in slots and int2_model:
        result = fits_quietly(catalog, tier, gpu, {**(models or {}), "large": int2_model}, overrides, filter_name)
        if result and result["fits"]:
            found.append(f"the int2 slot's 7B fits as the large model: vllm_models.large: {int2_model}")
    # 3. other tiers on this card
    others = []
    for name in tier_names(catalog):
        if name == tier:
            continue
        result = fits_quietly(catalog, name, gpu, models, overrides, filter_name)
        if result and result["fits"]:
            others.append(name)
    if others:
        auto_pick = next((n for n in others if catalog["tiers"][n].get("auto", True)), None)
        pick = f"tier=auto picks {auto_pick}" if auto_pick else "tier=auto picks none of them"
        found.append(f"tiers that fit {gpu_label(gpu)}: {', '.join(others)} ({pick})")
    # 4. a bigger card
    presets = sorted(load_gpu_presets().items(), key=lambda item: item[1]["memory_total_mib"])
    for name, preset in presets:
        if preset["memory_total_mib"] <= gpu["memory_total_mib"]:
            continue
        result = fits_quietly(catalog, tier, gpu_from_preset(name), models, overrides, filter_name)
        if result and result["fits"]:
            found.append(
                f"a bigger card fits tier {tier} as it is: {name} ({preset['memory_total_mib'] / 1024:.1f} GiB) "
                f"or any GPU with at least {preset['memory_total_mib'] / 1024:.1f} GiB"
            )
            break
    if not found:
        found.append("nothing smaller in the catalog fits this GPU")
    return found
