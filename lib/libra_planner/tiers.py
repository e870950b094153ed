"""Tier selection: a named tier, ``auto`` (the best-ranked guide tier that fits), ``max`` (the
largest model of the catalog's ladder that fits), or ``all`` (every tier, for reports).

``resolve_tier(catalog, "single", gpu)`` returns the "Resolved tier" dict of
docs/architecture.md; when it does not fit, its reasons name what would (whatif.py). The
catalogs (catalogs.py), one tier's resolution (resolve.py) and the text tables (tables.py) live
in their own modules; this module re-exports their public names for the filters.
"""

from __future__ import annotations

from .catalogs import (  # noqa: F401  (re-exported for filter_plugins/vllm.py and the tests)
    auto_tier_names,
    gpu_from_memory,
    gpu_from_preset,
    load_gpu_presets,
    load_tier_catalog,
    tier_names,
)
from .errors import PlannerError
from .resolve import build_tier, check_tier, resolve_one  # noqa: F401
from .tables import plan_table  # noqa: F401
from .validate import validate
from .whatif import advice, gives_gib, gpu_label, needs_gib

MAX_TIER = "max"
MIB_PER_GIB = 1024
# tier=auto points to tier max when its choice leaves more than this share of the card idle
IDLE_SHARE_FOR_MAX_HINT = 0.5


def _gib(mib: float) -> float:
    return mib / MIB_PER_GIB


def _public(resolved: dict, requested: str, gpu: dict) -> dict:
    out = {k: v for k, v in resolved.items() if k != "margin_gib"}
    out["requested"] = requested
    out["margin_gib"] = resolved.get("margin_gib")
    out["gpu"] = {k: gpu.get(k) for k in ("index", "name", "uuid", "memory_total_mib", "memory_free_mib", "compute_capability", "driver_version")}
    out.setdefault("candidates", [])
    # the one figure a plan needs and the one the card gives (whatif.needs_gib, gives_gib)
    out.setdefault("gives_gib", gives_gib(gpu))
    if "needs_gib" not in out:
        out["needs_gib"] = needs_gib(resolved, gpu)
    out.setdefault("advice", [])
    out.setdefault("details", [])
    return out


# The planner's reason (a marker in its text) -> the cause in words, for the plan's `why:` line.
_CAUSES = (
    ("exceeds the model's own maximum",
     lambda p: f"max_model_len {p.get('max_model_len')} is above the model's own maximum {p.get('model_max_len')}"),
    ("must be >= max_num_seqs", lambda p: "max_num_batched_tokens is below max_num_seqs, which vLLM refuses"),
    ("leaves nothing for the KV cache",
     lambda p: "weights and activations alone fill its budget, nothing is left for the KV cache"),
    ("one max_model_len request needs",
     lambda p: f"its KV cache cannot hold one request of max_model_len {p.get('max_model_len')} tokens"),
    ("vLLM starts only when free memory",
     lambda p: "cannot start, the GPU memory left free before it is less than its budget"),
    ("sit outside", lambda p: "its CUDA context and CUDA graphs do not fit next to its budget"),
)


def _why(resolved: dict) -> str:
    """Why a plan does not fit, in words and without a fix (the fixes are the re-planned advice)."""
    causes = []
    for inst in resolved.get("instances", []):
        plan = inst.get("plan") or {}
        label = f"{inst.get('name')} ({inst.get('model')})"
        for reason in plan.get("reasons") or []:
            cause = next((words(plan) for marker, words in _CAUSES if marker in reason), None)
            if cause:
                causes.append(f"{label}: {cause}")
    # the first failure per instance: the later ones follow from it (a budget of the whole card
    # cannot start either)
    causes = _first_per_instance(causes)
    if not causes:
        causes.append("the instances at the smallest budgets that hold max_model_len do not fit side by side")
    return "why: " + "; ".join(dict.fromkeys(causes))


def _first_per_instance(causes: list[str]) -> list[str]:
    seen, kept = set(), []
    for cause in causes:
        who = cause.split(": ", 1)[0]
        if who not in seen:
            seen.add(who)
            kept.append(cause)
    return kept


def _need_line(resolved: dict, gpu: dict) -> str:
    needs = needs_gib(resolved, gpu)
    needs_text = f"{needs:.2f} GiB" if needs is not None else "more memory than it has"
    free = gpu.get("memory_free_mib")
    gives = f"{gives_gib(gpu):.2f} GiB"
    if isinstance(free, (int, float)) and free < gpu["memory_total_mib"]:
        gives += f" free of {_gib(gpu['memory_total_mib']):.2f} GiB"
    return f"tier {resolved['name']} needs {needs_text} of GPU memory; {gpu.get('name') or 'the GPU'} has {gives}"


def _explain(resolved: dict, catalog: dict, tier: str, gpu: dict, models, overrides, filter_name: str, suggest: bool,
             lead: list[str] | None = None, skip_tiers: bool = False) -> None:
    """A plan that does not fit: one need figure, one give figure, why, and re-planned advice only.

    The planner's own wording of each failure (with its unverified hints) moves to ``details``.
    """
    resolved["details"] = list(resolved.get("reasons") or [])
    resolved["needs_gib"] = needs_gib(resolved, gpu)
    resolved["gives_gib"] = gives_gib(gpu)
    items = advice(catalog, tier, gpu, models, overrides, filter_name) if suggest else []
    if skip_tiers:
        items = [item for item in items if "tiers" not in item["set"]]
    resolved["advice"] = items
    texts = [item["text"] for item in items] or (["nothing smaller in the catalog fits this GPU"] if suggest else [])
    resolved["reasons"] = (lead or []) + [_need_line(resolved, gpu), _why(resolved)] + texts


def resolve_tier(
    catalog: dict | None,
    tier: str,
    gpu: dict,
    models: dict | None = None,
    overrides: dict | None = None,
    filter_name: str = "vllm_tier_resolve",
    suggest: bool = True,
) -> dict:
    """The resolved tier for ``gpu``; ``tier`` may be ``auto`` (best-ranked tier that fits)."""
    if catalog is None:
        catalog = load_tier_catalog()
    if not isinstance(gpu, dict) or "memory_total_mib" not in gpu or "compute_capability" not in gpu:
        raise PlannerError(filter_name, "gpu", "expected a GPU dict with memory_total_mib and compute_capability")
    validate({"tier": tier if tier else "", "vllm_models": models or {}, "vllm_tier_overrides": overrides or {}}, "inventory", filter_name)
    check_tier(catalog, tier, filter_name, tier_names(catalog))
    if tier == MAX_TIER and MAX_TIER in catalog["tiers"]:
        return _public(resolve_max(catalog, gpu, models, overrides, filter_name), MAX_TIER, gpu)
    if tier != "auto":
        resolved = resolve_one(catalog, tier, gpu, models, overrides, filter_name)
        if not resolved["fits"]:
            _explain(resolved, catalog, tier, gpu, models, overrides, filter_name, suggest)
        else:
            resolved["needs_gib"] = needs_gib(resolved, gpu)
            resolved["gives_gib"] = gives_gib(gpu)
        return _public(resolved, tier, gpu)

    candidates, results = [], {}
    for name in auto_tier_names(catalog):
        try:
            result = resolve_one(catalog, name, gpu, models, overrides, filter_name)
            results[name] = result
            candidates.append(
                {
                    "name": name,
                    "quality_rank": result["quality_rank"],
                    "fits": result["fits"],
                    "total_needs_gib": result["total_needs_gib"],
                    "free_after_gib": result["free_after_gib"],
                    "reasons": result["reasons"],
                }
            )
        except PlannerError as err:
            candidates.append(
                {
                    "name": name,
                    "quality_rank": catalog["tiers"][name]["quality_rank"],
                    "fits": False,
                    "total_needs_gib": None,
                    "free_after_gib": None,
                    "reasons": [str(err)],
                }
            )
    chosen = next((c["name"] for c in candidates if c["fits"]), None)
    if chosen is not None:
        resolved = results[chosen]
        resolved["reasons"] = [f"tier=auto chose {chosen}: the best-ranked tier that fits {gpu_label(gpu)}"] + resolved["reasons"]
        idle = float(resolved["free_after_gib"] or 0)
        if MAX_TIER in catalog["tiers"] and idle > IDLE_SHARE_FOR_MAX_HINT * gpu["memory_total_mib"] / 1024:
            best = resolve_max(catalog, gpu, models, overrides, filter_name)
            if best["fits"]:
                model = best["instances"][0]["model"]
                resolved["notes"] = list(resolved.get("notes") or []) + [
                    f"tier {chosen} leaves {idle:.1f} GiB of {gpu['memory_total_mib'] / 1024:.1f} GiB idle: "
                    f"tier=max runs {model}, the largest model of the catalog's ladder that fits this card"
                ]
    else:
        planned = [c for c in candidates if c["total_needs_gib"] is not None]
        if not planned:
            raise PlannerError(filter_name, "tier", "auto: no tier could be planned: " + "; ".join(r for c in candidates for r in c["reasons"]))
        closest = min(planned, key=lambda c: float(c["total_needs_gib"]))["name"]
        resolved = results[closest]
        _explain(resolved, catalog, closest, gpu, models, overrides, filter_name, suggest,
                 lead=[f"tier=auto: no tier fits {gpu_label(gpu)}; the smallest is {closest}"], skip_tiers=True)
    resolved["candidates"] = candidates
    return _public(resolved, "auto", gpu)


def resolve_all(catalog: dict | None, gpu: dict, models=None, overrides=None, filter_name: str = "vllm_tier_resolve") -> list[dict]:
    """Every tier resolved on ``gpu`` (best quality first), for reports; never raises for a non-fit."""
    if catalog is None:
        catalog = load_tier_catalog()
    results = []
    for name in tier_names(catalog):
        try:
            results.append(resolve_tier(catalog, name, gpu, models, overrides, filter_name))
        except PlannerError as err:
            # A tier this input cannot even plan (a model outside the catalog for its slot, bf16 on
            # Turing...) is reported as such; the other tiers are still shown.
            spec = catalog["tiers"][name]
            results.append(
                _public(
                    {
                        "name": name,
                        "compose_file": spec["compose_file"],
                        "vllm_mode": spec["vllm_mode"],
                        "quality_rank": spec["quality_rank"],
                        "fits": False,
                        "reasons": [str(err)],
                        "instances": [],
                        "total_needs_gib": None,
                        "free_after_gib": None,
                    },
                    name,
                    gpu,
                )
            )
    return results




def resolve_max(catalog: dict, gpu: dict, models: dict | None, overrides: dict | None, filter_name: str) -> dict:
    """Tier ``max``: the largest model of ``catalog['ladder']`` that fits ``gpu`` at the tier's
    minimum context and concurrency; the smallest rung's plan (and why) when none fits.

    The ladder is tried largest first; each rung is planned like any tier (vllm_models.max set to
    the rung). An operator's vllm_models.max is planned alone.
    """
    ladder = list(catalog.get("ladder") or [])
    if (models or {}).get(MAX_TIER):
        ladder = [models[MAX_TIER]]
    if not ladder:
        raise PlannerError(filter_name, "ladder", "catalog/tiers.yml has no ladder for tier max")
    tried: list[str] = []
    last = None
    for model in reversed(ladder):
        try:
            result = resolve_one(catalog, MAX_TIER, gpu, {**(models or {}), MAX_TIER: model}, overrides, filter_name)
        except PlannerError as err:
            tried.append(f"{model}: {err.message}")
            continue
        last = result
        if result["fits"]:
            inst = result["instances"][0]
            plan = inst["plan"]
            result["reasons"] = [
                f"tier max runs {model}, the largest of the ladder's {len(ladder)} models that fits {gpu_label(gpu)}: "
                f"weights {plan['weights_gib']:.2f} GiB + activations {plan['activation_gib']:.2f} GiB"
                + (f" + a cold torch.compile's peak {plan['cold_compile_gib']:.2f} GiB" if plan.get("cold_compile_gib") else "")
                + " + KV cache "
                f"{plan['kv_cache_gib']:.2f} GiB ({plan['kv_cache_tokens']} tokens: {plan['max_concurrency']:.2f} full-length "
                f"requests of max_model_len {plan['max_model_len']}) at gpu_memory_utilization {inst['gpu_memory_utilization']:.2f}, with "
                f"{plan['verdict_margin_gib']:.2f} GiB held for what varies between starts"
            ] + ([f"larger rungs that do not fit: {', '.join(m.split(':')[0] for m in tried)}"] if tried else []) + result["reasons"]
            return result
        tried.append(f"{model}: does not fit")
    if last is None:
        raise PlannerError(filter_name, "tier", "max: no model of the ladder could be planned: " + "; ".join(tried))
    last["details"] = list(last["reasons"])
    last["reasons"] = [f"tier max: no model of the ladder fits {gpu_label(gpu)}; the smallest is {ladder[0]}",
                       _need_line(last, gpu), _why(last)]
    return last


def max_by_preset(models: dict | None = None, overrides: dict | None = None, catalog: dict | None = None,
                  filter_name: str = "vllm_max_table") -> list[dict]:
    """Tier max resolved on every GPU preset of catalog/gpus.yml, smallest card first."""
    catalog = catalog or load_tier_catalog()
    presets = sorted(load_gpu_presets().items(), key=lambda item: item[1]["memory_total_mib"])
    return [_public(resolve_max(catalog, gpu_from_preset(name), models, overrides, filter_name), MAX_TIER, gpu_from_preset(name))
            | {"preset": name} for name, _ in presets]
