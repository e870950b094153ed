"""Tier resolution: catalog/tiers.yml + inventory overrides + a GPU -> the resolved tier.

``resolve_tier(catalog, "single", gpu)`` merges the slot models and the overrides, chooses the
dtype for the GPU's compute capability, solves ``gpu_memory_utilization`` where the catalog says
``auto``, plans the instances on the GPU, and returns the "Resolved tier" dict of
docs/architecture.md. When the tier does not fit, its reasons name what would: a shorter context,
the 2-bit 7B, another tier, or a bigger card, each computed with the same planner.
``tier="auto"`` takes the best-ranked tier that fits and lists every tier's verdict.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from typing import Any

import yaml

from .errors import PlannerError
from .validate import validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIERS_PATH = os.path.join(ROOT, "catalog", "tiers.yml")
GPUS_PATH = os.path.join(ROOT, "catalog", "gpus.yml")

ENGINE_KNOBS = (
    "gpu_memory_utilization",
    "max_model_len",
    "max_num_batched_tokens",
    "max_num_seqs",
    "dtype",
    "kv_cache_dtype",
    "enforce_eager",
)
STACK_KNOBS = ("swap_space_gib", "shm_size", "container_memory_limit", "host_swap_gib", "min_concurrency", "margin_gib")
ENGINE_DEFAULTS = {"dtype": "auto", "kv_cache_dtype": "auto", "enforce_eager": False}
STACK_DEFAULTS = {"min_concurrency": 1, "margin_gib": 0.25}
MIB_PER_GIB = 1024
# Shortest context the "what would fit" search proposes.
MIN_SUGGESTED_LEN = 256


# --------------------------------------------------------------------------- catalogs
def _read_yaml(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=4)
def _tier_catalog_cached(path: str) -> dict:
    return validate(_read_yaml(path), "tiers", filter_name="vllm_tier_resolve")


def load_tier_catalog(path: str | None = None) -> dict:
    """catalog/tiers.yml, validated against schemas/tiers.schema.json (a fresh copy each call)."""
    return copy.deepcopy(_tier_catalog_cached(path or TIERS_PATH))


@lru_cache(maxsize=4)
def _gpu_presets_cached(path: str) -> dict:
    return validate(_read_yaml(path), "gpus", filter_name="vllm_gpu_preset")["gpus"]


def load_gpu_presets(path: str | None = None) -> dict:
    return copy.deepcopy(_gpu_presets_cached(path or GPUS_PATH))


def gpu_from_preset(name: str, filter_name: str = "vllm_gpu_preset") -> dict:
    """A GPU dict for a preset in catalog/gpus.yml; an unknown name lists the known ones."""
    presets = load_gpu_presets()
    if not isinstance(name, str) or name not in presets:
        raise PlannerError(filter_name, "gpu_facts_preset", f"unknown GPU preset {name!r}; known presets: {', '.join(presets)}")
    gpu = dict(presets[name])
    gpu.update({"preset": name, "index": 0, "uuid": None, "memory_used_mib": None, "memory_free_mib": None, "driver_version": None})
    return gpu


def gpu_from_memory(memory_total_mib, compute_capability, name: str | None = None, filter_name: str = "vllm_gpu_preset") -> dict:
    """A GPU dict from explicit numbers (``gpu_facts_memory_total_mib`` + ``gpu_facts_compute_capability``)."""
    try:
        total = int(memory_total_mib)
    except (TypeError, ValueError):
        raise PlannerError(filter_name, "gpu_facts_memory_total_mib", f"not an integer number of MiB: {memory_total_mib!r}") from None
    if total <= 0:
        raise PlannerError(filter_name, "gpu_facts_memory_total_mib", f"must be > 0, got {total}")
    cap = str(compute_capability)
    parts = cap.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise PlannerError(filter_name, "gpu_facts_compute_capability", f"expected a string such as \"7.5\", got {compute_capability!r}")
    return {
        "index": 0,
        "name": name or f"GPU with {total} MiB",
        "uuid": None,
        "memory_total_mib": total,
        "memory_used_mib": None,
        "memory_free_mib": None,
        "compute_capability": cap,
        "driver_version": None,
    }


def tier_names(catalog: dict) -> list[str]:
    """Tier names, best quality first."""
    tiers = catalog["tiers"]
    return sorted(tiers, key=lambda n: (-int(tiers[n]["quality_rank"]), n))


def _gib(mib: float) -> float:
    return mib / MIB_PER_GIB


# --------------------------------------------------------------------------- planner access
def _planner():
    """The planner core (imported late so the catalog and validation work on their own)."""
    from . import memory, models, multi  # noqa: PLC0415  (deliberately lazy)

    return models, memory, multi


def _model_catalog() -> dict:
    models, _, _ = _planner()
    loaded = models.load_model_catalog()
    return loaded.get("models", loaded) if isinstance(loaded, dict) else {}


def _field(obj: Any, key: str, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


# --------------------------------------------------------------------------- building
def _check_tier(catalog: dict, tier: Any, filter_name: str, allow_auto: bool = True) -> str:
    names = tier_names(catalog)
    valid = names + (["auto"] if allow_auto else [])
    if not isinstance(tier, str) or tier not in valid:
        shown = "an empty tier" if tier in (None, "") else f"unknown tier {tier!r}"
        raise PlannerError(filter_name, "tier", f"{shown}; valid tiers: {', '.join(valid)}")
    return tier


def build_tier(catalog: dict, tier: str, models: dict | None = None, overrides: dict | None = None, filter_name: str = "vllm_tier_resolve") -> dict:
    """The tier's settings and instances with every knob merged, before planning.

    Precedence, lowest first: catalog tier, catalog instance, override tier, override instance.
    """
    spec = catalog["tiers"][tier]
    tier_override = dict((overrides or {}).get(tier) or {})
    instance_overrides = tier_override.pop("instances", None) or {}
    slot_models = dict(catalog.get("models", {}))
    for slot, model_id in (models or {}).items():
        if slot not in slot_models:
            raise PlannerError(filter_name, f"vllm_models.{slot}", f"unknown model slot; valid slots: {', '.join(slot_models)}")
        slot_models[slot] = model_id
    names = [inst["name"] for inst in spec["instances"]]
    for name in instance_overrides:
        if name not in names:
            raise PlannerError(
                filter_name, f"vllm_tier_overrides.{tier}.instances.{name}", f"tier {tier} has no instance {name!r}; its instances: {', '.join(names)}"
            )
    settings = {k: spec.get(k, STACK_DEFAULTS.get(k)) for k in STACK_KNOBS}
    settings.update({k: tier_override[k] for k in STACK_KNOBS if k in tier_override})
    instances = []
    for inst in spec["instances"]:
        merged: dict[str, Any] = dict(ENGINE_DEFAULTS)
        for layer in (spec, inst, tier_override, instance_overrides.get(inst["name"]) or {}):
            merged.update({k: layer[k] for k in ENGINE_KNOBS if k in layer})
        own = instance_overrides.get(inst["name"]) or {}
        model_id = own.get("model", slot_models[inst["model_slot"]])
        entry = {
            "name": inst["name"],
            "service": inst["service"],
            "container_name": inst["container_name"],
            "port": own.get("port", inst["port"]),
            "model_slot": inst["model_slot"],
            "model": model_id,
            "served_model_name": own.get("served_model_name", inst.get("served_model_name", model_id)),
            **merged,
        }
        if own.get("model_config") is not None:
            entry["model_config"] = own["model_config"]
        instances.append(entry)
    return {
        "name": tier,
        "compose_file": spec["compose_file"],
        "vllm_mode": spec["vllm_mode"],
        "quality_rank": spec["quality_rank"],
        "swap_space_gib": settings["swap_space_gib"],
        "shm_size": settings["shm_size"],
        "container_memory_limit": settings["container_memory_limit"],
        "host_swap_gib": settings["host_swap_gib"],
        "min_concurrency": settings["min_concurrency"],
        "margin_gib": settings["margin_gib"],
        "instances": instances,
    }


def _model_facts(instance: dict, model_catalog: dict, tier: str, filter_name: str) -> tuple[str | None, str | None]:
    """(torch_dtype, quantization method) of an instance's model; refuses an unknown model."""
    config = instance.get("model_config")
    if config is not None:
        quant = (config.get("quantization_config") or {}).get("quant_method") if isinstance(config, dict) else None
        return _field(config, "torch_dtype"), quant
    entry = model_catalog.get(instance["model"])
    if entry is None:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(instance["model"], list(model_catalog), n=3, cutoff=0.5)
        known = sorted(model_catalog)
        hint = f"; close catalog ids: {', '.join(close)}" if close else f"; catalog ids include: {', '.join(known[:6])}{', ...' if len(known) > 6 else ''}"
        raise PlannerError(
            filter_name,
            f"vllm_models.{instance['model_slot']}",
            f"model {instance['model']!r} has no entry in catalog/models.yml and no model_config "
            f"(give vllm_tier_overrides.{tier}.instances.{instance['name']}.model_config, a Hugging Face config.json){hint}",
        )
    quant = _field(entry, "quantization") or {}
    return _field(_field(entry, "config", {}), "torch_dtype"), _field(quant, "method")


def _effective_quantization(instance: dict, cap: str, models_mod, memory_mod, filter_name: str) -> str | None:
    """The --quantization value that runs the kernel the planner assumed.

    vLLM upgrades a 4-bit AWQ / 4- and 8-bit GPTQ checkpoint to its Marlin kernel on compute
    capability >= 8.0 only when --quantization is unset or names the Marlin variant; an explicit
    ``awq`` forces the slow kernel ("... you specified quantization=awq explicitly, so forcing
    awq", vllm-project/vllm#20112). So the resolved value names the Marlin variant where the
    planner counts Marlin, and the plain method elsewhere (Turing).
    """
    arch = models_mod.resolve_model_config(_planner_instance(instance), filter_name)
    quant = arch.get("quantization")
    if not quant:
        return None
    uses_marlin = getattr(memory_mod, "_uses_marlin", None)
    if uses_marlin is not None and uses_marlin(quant, memory_mod.parse_compute_capability(cap, filter_name)):
        return f"{quant['method']}_marlin"
    return quant["method"]


def _planner_instance(instance: dict) -> dict:
    """The keys the planner reads (DESIGN.md contract 4)."""
    keys = ("model", "model_config", "gpu_memory_utilization", "max_model_len", "max_num_seqs", "max_num_batched_tokens", "dtype", "kv_cache_dtype", "enforce_eager")
    return {k: instance[k] for k in keys if k in instance and instance[k] is not None}


def _plan(built: dict, gpu: dict, filter_name: str) -> dict:
    """Choose dtypes, solve `auto` utilizations, plan all instances; fills ``built`` in place."""
    models_mod, memory_mod, multi_mod = _planner()
    model_catalog = _model_catalog()
    cap = str(gpu["compute_capability"])
    for inst in built["instances"]:
        model_dtype, _ = _model_facts(inst, model_catalog, built["name"], filter_name)
        inst["dtype"] = memory_mod.choose_dtype(cap, inst.get("dtype"), model_dtype or "bfloat16", filter_name)
        inst["quantization"] = _effective_quantization(inst, cap, models_mod, memory_mod, filter_name)
    auto = [i for i, inst in enumerate(built["instances"]) if inst["gpu_memory_utilization"] == "auto"]
    solver_reasons: list[str] = []
    if auto:
        solved = _solve(built, gpu, auto, multi_mod, filter_name, solver_reasons)
        for i in auto:
            built["instances"][i]["gpu_memory_utilization"] = round(float(solved[i]), 4)
    built["utilization_solved"] = [built["instances"][i]["name"] for i in auto]
    plan = multi_mod.plan_instances([_planner_instance(inst) for inst in built["instances"]], gpu, filter_name)
    for inst, inst_plan in zip(built["instances"], plan["instances"]):
        inst["plan"] = inst_plan
    built["fits"] = bool(plan["fits"]) and not solver_reasons
    built["reasons"] = solver_reasons + [r for r in plan.get("reasons") or [] if r not in solver_reasons]
    built["total_needs_gib"] = plan.get("total_needs_gib", plan.get("total_budget_gib"))
    built["free_after_gib"] = plan.get("free_after_gib")
    return built


def _is_fit_error(err: PlannerError) -> bool:
    """The solver's "cannot fit" errors name the instance list, bad input names a field."""
    return err.field == "instances" or err.field.startswith("instances[")


def _solve(built: dict, gpu: dict, auto: list[int], multi_mod, filter_name: str, reasons: list[str]) -> list[float]:
    """Utilizations for the `auto` instances; when they cannot fit together, each one's own
    smallest utilization (or the whole card) so the plan can still report what it would need."""
    args = (int(built["min_concurrency"]), float(built["margin_gib"]), filter_name)
    instances = [_planner_instance({**inst, "gpu_memory_utilization": None}) for inst in built["instances"]]
    try:
        return multi_mod.solve_utilization(instances, gpu, *args)
    except PlannerError as err:
        if not _is_fit_error(err):
            raise
        reasons.append(err.message)
    alone = []
    for i, inst in enumerate(instances):
        if i not in auto:
            alone.append(float(built["instances"][i]["gpu_memory_utilization"]))
            continue
        try:
            alone.append(float(multi_mod.solve_utilization([inst], {k: v for k, v in gpu.items() if k != "memory_free_mib"}, *args)[0]))
        except PlannerError as err:
            if not _is_fit_error(err):
                raise
            alone.append(1.0)
    return alone


def _resolve_one(catalog, tier, gpu, models, overrides, filter_name) -> dict:
    built = build_tier(catalog, tier, models, overrides, filter_name)
    return _plan(built, gpu, filter_name)


def _fits_quietly(catalog, tier, gpu, models, overrides, filter_name) -> dict | None:
    """Resolve for a what-if; ``None`` when the what-if itself is invalid (bad dtype for the card...)."""
    try:
        return _resolve_one(catalog, tier, gpu, models, overrides, filter_name)
    except PlannerError:
        return None


def _with_override(overrides: dict | None, tier: str, **knobs) -> dict:
    merged = copy.deepcopy(overrides or {})
    merged.setdefault(tier, {}).update(knobs)
    return merged


def _gpu_label(gpu: dict) -> str:
    return f"{gpu.get('name') or 'the GPU'} ({_gib(gpu['memory_total_mib']):.1f} GiB)"


def suggestions(catalog, tier, gpu, models, overrides, filter_name) -> list[str]:
    """What would fit instead, each computed by planning it."""
    found: list[str] = []
    built = build_tier(catalog, tier, models, overrides, filter_name)
    # 1. a shorter context, same tier and card
    length = min(int(inst["max_model_len"]) for inst in built["instances"])
    candidate = length // 2
    while candidate >= MIN_SUGGESTED_LEN:
        result = _fits_quietly(catalog, tier, gpu, models, _with_override(overrides, tier, max_model_len=candidate), filter_name)
        if result and result["fits"]:
            found.append(f"a shorter context fits: max_model_len {candidate} (vllm_tier_overrides.{tier}.max_model_len: {candidate})")
            break
        candidate //= 2
    # 2. the 2-bit 7B in place of the 4-bit one
    slots = {inst["model_slot"] for inst in built["instances"]}
    int2_model = {**catalog.get("models", {}), **(models or {})}.get("int2")
    if "large" in slots and int2_model:
        result = _fits_quietly(catalog, tier, gpu, {**(models or {}), "large": int2_model}, overrides, filter_name)
        if result and result["fits"]:
            found.append(f"the 2-bit 7B fits as the large model: vllm_models.large: {int2_model}")
    # 3. other tiers on this card
    others = []
    for name in tier_names(catalog):
        if name == tier:
            continue
        result = _fits_quietly(catalog, name, gpu, models, overrides, filter_name)
        if result and result["fits"]:
            others.append(name)
    if others:
        found.append(f"tiers that fit {_gpu_label(gpu)}: {', '.join(others)} (tier=auto picks {others[0]})")
    # 4. a bigger card
    presets = sorted(load_gpu_presets().items(), key=lambda item: item[1]["memory_total_mib"])
    for name, preset in presets:
        if preset["memory_total_mib"] <= gpu["memory_total_mib"]:
            continue
        result = _fits_quietly(catalog, tier, gpu_from_preset(name), models, overrides, filter_name)
        if result and result["fits"]:
            found.append(
                f"a bigger card fits tier {tier} as it is: {name} ({_gib(preset['memory_total_mib']):.1f} GiB) "
                f"or any GPU with at least {_gib(preset['memory_total_mib']):.1f} GiB"
            )
            break
    if not found:
        found.append("nothing smaller in the catalog fits this GPU")
    return found


def _public(resolved: dict, requested: str, gpu: dict) -> dict:
    out = {k: v for k, v in resolved.items() if k != "margin_gib"}
    out["requested"] = requested
    out["margin_gib"] = resolved.get("margin_gib")
    out["gpu"] = {k: gpu.get(k) for k in ("index", "name", "uuid", "memory_total_mib", "memory_free_mib", "compute_capability", "driver_version")}
    out.setdefault("candidates", [])
    return out


def _min_needs_gib(resolved: dict) -> float | None:
    """GPU memory the tier needs at the smallest utilizations that hold its max_model_len.

    Per instance: min utilization x total + what sits outside the budget (CUDA context, graphs).
    """
    total = 0.0
    for inst in resolved.get("instances", []):
        plan = inst.get("plan") or {}
        try:
            outside = float(plan["needs_gib"]) - float(plan["budget_gib"])
            total += max(float(plan["min_gpu_memory_utilization"]) * float(plan["gpu_total_gib"]), float(plan["budget_gib"])) + outside
        except (KeyError, TypeError, ValueError):
            return None
    return total


def _need_line(resolved: dict, gpu: dict) -> str:
    needs = resolved.get("total_needs_gib")
    at_least = _min_needs_gib(resolved)
    if needs is not None and at_least is not None:
        needs = max(float(needs), at_least)
    needs_text = f"{float(needs):.2f} GiB" if needs is not None else "more memory than it has"
    has = f"{_gib(gpu['memory_total_mib']):.2f} GiB"
    free = gpu.get("memory_free_mib")
    if isinstance(free, (int, float)) and free < gpu["memory_total_mib"]:
        has += f" ({_gib(free):.2f} GiB free)"
    return f"tier {resolved['name']} needs {needs_text} of GPU memory; {gpu.get('name') or 'the GPU'} has {has}"


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
    _check_tier(catalog, tier, filter_name)
    if tier != "auto":
        resolved = _resolve_one(catalog, tier, gpu, models, overrides, filter_name)
        if not resolved["fits"]:
            resolved["reasons"].insert(0, _need_line(resolved, gpu))
            if suggest:
                resolved["reasons"].extend(suggestions(catalog, tier, gpu, models, overrides, filter_name))
        return _public(resolved, tier, gpu)

    candidates, results = [], {}
    for name in tier_names(catalog):
        try:
            result = _resolve_one(catalog, name, gpu, models, overrides, filter_name)
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
        resolved["reasons"] = [f"tier=auto chose {chosen}: the best-ranked tier that fits {_gpu_label(gpu)}"] + resolved["reasons"]
    else:
        planned = [c for c in candidates if c["total_needs_gib"] is not None]
        if not planned:
            raise PlannerError(filter_name, "tier", "auto: no tier could be planned: " + "; ".join(r for c in candidates for r in c["reasons"]))
        closest = min(planned, key=lambda c: float(c["total_needs_gib"]))["name"]
        resolved = results[closest]
        resolved["reasons"] = [f"tier=auto: no tier fits {_gpu_label(gpu)}; the smallest is {closest}", _need_line(resolved, gpu)] + resolved["reasons"]
        if suggest:
            resolved["reasons"].extend(s for s in suggestions(catalog, closest, gpu, models, overrides, filter_name) if not s.startswith("tiers that fit"))
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


# --------------------------------------------------------------------------- report
# Planner keys for each column, first match wins (the planner's plan dict, DESIGN.md contract 4).
_COLUMNS = (
    ("weights", ("weights_gib",)),
    ("activations", ("activation_gib", "activations_gib", "peak_activation_gib")),
    ("overhead", ("overhead_gib",)),
    ("kv_cache", ("kv_cache_gib",)),
)
_OVERHEAD_PARTS = ("non_torch_gib", "cuda_context_gib", "cuda_graph_gib")


def _num(plan: dict, keys) -> float | None:
    for key in keys:
        value = plan.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _overhead(plan: dict) -> float | None:
    direct = _num(plan, ("overhead_gib",))
    if direct is not None:
        return direct
    parts = [plan.get(k) for k in _OVERHEAD_PARTS if isinstance(plan.get(k), (int, float))]
    return float(sum(parts)) if parts else None


def _cell(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def plan_table(resolved_list, summary: bool = False) -> list[str]:
    """Text lines: per tier, a row per instance with its GPU memory budget and the verdict."""
    if isinstance(resolved_list, dict):
        resolved_list = [resolved_list]
    header = (
        f"{'instance':<11} {'model':<38} {'util':>5} {'weights':>8} {'activ':>6} {'overhead':>8} "
        f"{'kv_cache':>8} {'tokens':>7} {'conc':>6} {'headroom':>8}  verdict"
    )
    lines: list[str] = []
    for resolved in resolved_list:
        gpu = resolved.get("gpu") or {}
        total_gib = _gib(gpu.get("memory_total_mib") or 0)
        verdict = "FITS" if resolved.get("fits") else "DOES NOT FIT"
        asked = f" (requested {resolved['requested']})" if resolved.get("requested") not in (None, resolved.get("name")) else ""
        lines.append(
            f"== tier {resolved.get('name')}{asked} on {gpu.get('name') or 'GPU'} "
            f"({total_gib:.2f} GiB, cc {gpu.get('compute_capability')}): {verdict}"
        )
        lines.append(header)
        for inst in resolved.get("instances", []):
            plan = inst.get("plan") or {}
            headroom = _num(plan, ("headroom_gib", "free_gib"))
            lines.append(
                f"{inst.get('name', ''):<11} {str(inst.get('model', ''))[:38]:<38} "
                f"{_cell(inst.get('gpu_memory_utilization')):>5} "
                f"{_cell(_num(plan, _COLUMNS[0][1])):>8} {_cell(_num(plan, _COLUMNS[1][1])):>6} "
                f"{_cell(_overhead(plan)):>8} {_cell(_num(plan, _COLUMNS[3][1])):>8} "
                f"{_cell(_num(plan, ('kv_cache_tokens',)), '{:.0f}'):>7} {_cell(_num(plan, ('max_concurrency',))):>6} "
                f"{_cell(headroom):>8}  {'fits' if plan.get('fits') else 'no'}"
            )
        needs = resolved.get("total_needs_gib")
        free_after = resolved.get("free_after_gib")
        lines.append(
            f"   needs {_cell(needs)} GiB of {total_gib:.2f} GiB; free after start {_cell(free_after)} GiB; "
            f"dtype {', '.join(sorted({str(i.get('dtype')) for i in resolved.get('instances', [])}))}; "
            f"compose {resolved.get('compose_file')}, VLLM_MODE={resolved.get('vllm_mode')}"
        )
        for reason in resolved.get("reasons") or []:
            lines.append(f"   - {reason}")
        if not summary and resolved.get("candidates"):
            lines.append(
                "   candidates: "
                + ", ".join(f"{c['name']}={'fits' if c['fits'] else 'no'}" for c in resolved["candidates"])
            )
    return lines
