"""The what-if search: when a tier does not fit, what would, each answer planned to be true.

One reason to change: which alternatives the plan proposes (automatic budgets, a shorter
context, CUDA graphs off, the lowest-bit 7B for the large slot, other tiers on the same card, a
bigger card), and the one figure a plan says it needs.

Every item of advice is a setting an operator makes (an inventory variable or ``-e``), applied
to the same plan inputs and re-planned: only what then fits is proposed. The items are
alternatives; each one alone makes the plan fit, so no two of them contradict each other.
"""

from __future__ import annotations

import copy
import json

from .catalogs import gpu_from_preset, load_gpu_presets, tier_names
from .errors import PlannerError
from .memory import _ceil_util
from .multi import started_in_order
from .resolve import build_tier, resolve_one

# Shortest context the "what would fit" search proposes.
MIN_SUGGESTED_LEN = 256
MIB = 1 << 20
GIB = 1 << 30


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


def gives_gib(gpu: dict) -> float:
    """What the card gives a plan: its free memory when known (a running process holds some), else its total."""
    free = gpu.get("memory_free_mib")
    total = float(gpu["memory_total_mib"])
    return (float(free) if isinstance(free, (int, float)) and not isinstance(free, bool) and free < total else total) / 1024


def needs_gib(resolved: dict, gpu: dict) -> float | None:
    """The one figure for what a resolved tier needs on ``gpu``.

    A plan that fits needs what its instances take at their utilizations (``total_needs_gib``).
    One that does not needs, per instance, the smallest budget (in hundredths of the card, as
    vLLM takes it) that holds weights, activations, non-torch memory, ``min_concurrency``
    requests of ``max_model_len`` and the larger of the tier's ``margin_gib`` and the verdict's
    margin, or its fixed budget when that is larger; plus what sits outside the budget (CUDA
    context, CUDA graphs on releases that keep them out). Instances start in order: each one
    needs its whole budget while it starts and holds it less a cold compile's peak afterwards.
    """
    if resolved.get("fits"):
        value = resolved.get("total_needs_gib")
        return None if value is None else float(value)
    instances = resolved.get("instances") or []
    if not instances:
        return None
    total = int(gpu["memory_total_mib"]) * MIB
    solved = set(resolved.get("utilization_solved") or [])
    concurrency = float(resolved.get("min_concurrency") or 1)
    margin = int(round(float(resolved.get("margin_gib") or 0) * GIB))
    steps = []
    for inst in instances:
        plan = inst.get("plan") or {}
        try:
            kv = int(-(-plan["kv_bytes_per_request"] * concurrency // 1))
            held = plan["non_kv_bytes"] + kv + max(margin if inst["name"] in solved else 0, plan["verdict_margin_bytes"])
            budget = int(_ceil_util(held, total) * total)
            if inst["name"] not in solved:
                budget = max(budget, int(plan["budget_bytes"]))
            start = budget + int(plan["outside_budget_bytes"])
            steps.append((start, start - int(plan.get("cold_compile_bytes", 0))))
        except (KeyError, TypeError):
            return None
    return started_in_order(steps) / GIB


def _extra_vars(settings: dict) -> str:
    """The ``-e`` that sets them: a whole variable, as extra vars replace an inventory's dict."""
    return "-e '" + json.dumps(settings, separators=(",", ":")) + "'"


def _item(text: str, settings: dict, result: dict, gpu: dict) -> dict:
    return {
        "text": text,
        "set": settings,
        "tier": result["name"],
        "needs_gib": needs_gib(result, gpu),
        "gives_gib": gives_gib(gpu),
    }


def advice(catalog, tier, gpu, models, overrides, filter_name) -> list[dict]:
    """What would fit instead, each item planned with its setting applied and found to fit.

    An item: ``text`` (for the operator), ``set`` (the variables to set, as ``-e`` takes them),
    ``tier`` (the tier then planned), ``needs_gib`` / ``gives_gib`` of that re-plan.
    """
    found: list[dict] = []
    built = build_tier(catalog, tier, models, overrides, filter_name)
    minimum = lambda r: f"needs {needs_gib(r, gpu):.2f} of {gives_gib(gpu):.2f} GiB"  # noqa: E731

    def offer(words: str, settings: dict) -> bool:
        """Re-plan with the settings applied; list them (with their -e) when that fits."""
        chosen = settings.get("vllm_models", models)
        result = fits_quietly(catalog, tier, gpu, chosen, settings.get("vllm_tier_overrides", overrides), filter_name)
        if not (result and result["fits"]):
            return False
        found.append(_item(f"{words} ({_extra_vars(settings)}); re-planned: fits, {minimum(result)}",
                           settings, result, gpu))
        return True

    # 1. budgets the planner solves, where the tier or an override fixed them
    if any(inst.get("gpu_memory_utilization") != "auto" for inst in built["instances"]):
        merged = copy.deepcopy(overrides or {})
        merged.setdefault(tier, {}).update({"gpu_memory_utilization": "auto"})
        for inst in (merged[tier].get("instances") or {}).values():
            inst.pop("gpu_memory_utilization", None)
            inst.pop("gpu_memory_gib", None)
        merged[tier].pop("gpu_memory_gib", None)
        offer(f"let the planner size each budget: vllm_tier_overrides.{tier}.gpu_memory_utilization: auto",
              {"vllm_tier_overrides": merged})
    # 2. a shorter context, same tier and card
    lengths = [int(inst["max_model_len"]) for inst in built["instances"] if inst.get("max_model_len")]
    candidate = (min(lengths) if lengths else 65536) // 2
    while candidate >= MIN_SUGGESTED_LEN:
        if offer(f"a shorter context fits: max_model_len {candidate}, as vllm_tier_overrides.{tier}.max_model_len: {candidate}",
                 {"vllm_tier_overrides": with_override(overrides, tier, max_model_len=candidate)}):
            break
        candidate //= 2
    # 3. CUDA graphs off (slower decoding, no graph memory)
    if not all(inst.get("enforce_eager") for inst in built["instances"]):
        offer(f"without CUDA graphs (slower decoding): vllm_tier_overrides.{tier}.enforce_eager: true",
              {"vllm_tier_overrides": with_override(overrides, tier, enforce_eager=True)})
    # 4. the lowest-bit 7B (the int2 slot) in place of the large model
    slots = {inst["model_slot"] for inst in built["instances"]}
    int2_model = {**catalog.get("models", {}), **(models or {})}.get("int2")
    if "large" in slots and int2_model:
        offer(f"the int2 slot's 7B fits as the large model: vllm_models.large: {int2_model}",
              {"vllm_models": {**(models or {}), "large": int2_model}})
    # 5. other tiers on this card
    # planned as `-e tier=NAME` plans it (tier max searches its ladder)
    from .tiers import resolve_tier  # noqa: PLC0415  (tiers imports this module)

    others = []
    for name in tier_names(catalog):
        if name == tier:
            continue
        try:
            result = resolve_tier(catalog, name, gpu, models, overrides, filter_name, suggest=False)
        except PlannerError:
            result = None
        if result and result["fits"]:
            others.append((name, result))
    if others:
        names = [name for name, _ in others]
        auto_pick = next((n for n in names if catalog["tiers"][n].get("auto", True)), None)
        pick = f"tier=auto picks {auto_pick}" if auto_pick else "tier=auto picks none of them"
        first_name, first = others[0]
        found.append(_item(
            f"tiers that fit {gpu_label(gpu)}: {', '.join(names)} ({pick}; -e tier={first_name}); "
            f"re-planned: tier {first_name} fits, {minimum(first)}",
            {"tier": first_name, "tiers": names}, first, gpu))
    # 6. a bigger card
    presets = sorted(load_gpu_presets().items(), key=lambda item: item[1]["memory_total_mib"])
    for name, preset in presets:
        if preset["memory_total_mib"] <= gpu["memory_total_mib"]:
            continue
        bigger = gpu_from_preset(name)
        result = fits_quietly(catalog, tier, bigger, models, overrides, filter_name)
        if result and result["fits"]:
            item = _item(
                f"a bigger card fits tier {tier} as it is: {name} ({preset['memory_total_mib'] / 1024:.1f} GiB) "
                f"or any GPU with at least {preset['memory_total_mib'] / 1024:.1f} GiB "
                f"(make plan TIER={tier} ARGS=\"-e gpu_facts_preset={name}\"); re-planned there: fits, "
                f"needs {needs_gib(result, bigger):.2f} of {gives_gib(bigger):.2f} GiB",
                {"gpu_facts_preset": name}, result, bigger)
            found.append(item)
            break
    return found


def suggestions(catalog, tier, gpu, models, overrides, filter_name) -> list[str]:
    """The advice as text lines; "nothing smaller in the catalog fits this GPU" when there is none."""
    return [item["text"] for item in advice(catalog, tier, gpu, models, overrides, filter_name)] or [
        "nothing smaller in the catalog fits this GPU"
    ]
