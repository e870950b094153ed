"""Resolved tiers to draw: planned in-process from the GPU presets (catalog/gpus.yml)."""

from __future__ import annotations

from libra_planner.tiers import gpu_from_preset, resolve_tier

# name: (GPU preset, tier, tier overrides, memory_free_mib or None)
CASES = {
    # the guide's card with both instances: does not fit (the 7B's budget runs over the card)
    "rtx2070-dual": ("rtx2070", "dual", {}, None),
    # one instance with a large budget on an 80 GB card: fits
    "a100-80gb-single": ("a100-80gb", "single", {"single": {"gpu_memory_utilization": 0.9}}, None),
    # the budget leaves too little KV cache for one 32k request: the missing KV cache is red
    "rtx2070-kv-short": ("rtx2070", "single", {"single": {"gpu_memory_utilization": 0.5, "max_model_len": 32768}}, None),
    # other processes hold 3.2 GiB of a 12 GB card
    "rtx3060-dual-busy": ("rtx3060", "dual", {}, 9000),
    "rtx3060-single": ("rtx3060", "single", {}, None),
}


def resolved_case(name: str) -> dict:
    preset, tier, overrides, free = CASES[name]
    gpu = gpu_from_preset(preset)
    if free is not None:
        gpu["memory_free_mib"] = free
    return resolve_tier(None, tier, gpu, {}, overrides, "vllm_tier_resolve")
