"""Tier resolution: one tier of catalog/tiers.yml + inventory overrides + a GPU -> the resolved tier.

``build_tier`` merges the slot models and the overrides; ``resolve_one`` chooses the dtype for
the GPU's compute capability, turns absolute budgets (``gpu_memory_gib``) into utilizations,
solves ``gpu_memory_utilization: auto``, pins each instance's KV cache where the tier asks for it
and the release has ``--kv-cache-memory-bytes``, plans the instances on the GPU, and returns the
"Resolved tier" dict of docs/architecture.md (without the what-if suggestions, see whatif.py).

One reason to change: how a tier's settings become planned instances.
"""

from __future__ import annotations

import difflib
from typing import Any

from . import memory, multi
from .engine import release_facts
from .errors import PlannerError
from .models import load_model_catalog, resolve_model_config

ENGINE_KNOBS = (
    "gpu_memory_utilization",
    "gpu_memory_gib",
    "max_model_len",
    "max_num_batched_tokens",
    "max_num_seqs",
    "dtype",
    "kv_cache_dtype",
    "enforce_eager",
    "vllm_version",
    "kv_cache_memory_bytes",
)
STACK_KNOBS = ("swap_space_gib", "shm_size", "container_memory_limit", "host_swap_gib", "min_concurrency", "margin_gib", "pin_kv_cache")
ENGINE_DEFAULTS = {"dtype": "auto", "kv_cache_dtype": "auto", "enforce_eager": False, "vllm_version": None, "kv_cache_memory_bytes": None}
STACK_DEFAULTS = {"min_concurrency": 1, "margin_gib": 0.25, "pin_kv_cache": False}
# The keys plan_instance reads (DESIGN.md contract 4).
PLANNER_KEYS = (
    "model", "model_config", "gpu_memory_utilization", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
    "dtype", "kv_cache_dtype", "enforce_eager", "vllm_version", "kv_cache_memory_bytes",
)


def check_tier(catalog: dict, tier: Any, filter_name: str, names: list[str]) -> str:
    valid = names + ["auto"]
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
            for key in ENGINE_KNOBS:
                if key in layer:
                    merged[key] = layer[key]
                    # an explicit utilization replaces an absolute budget from a lower layer, and back
                    other = {"gpu_memory_utilization": "gpu_memory_gib", "gpu_memory_gib": "gpu_memory_utilization"}.get(key)
                    if other and other not in layer:
                        merged.pop(other, None)
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
        "description": spec.get("description"),
        "compose_file": spec["compose_file"],
        "vllm_mode": spec["vllm_mode"],
        "quality_rank": spec["quality_rank"],
        "swap_space_gib": settings["swap_space_gib"],
        "shm_size": settings["shm_size"],
        "container_memory_limit": settings["container_memory_limit"],
        "host_swap_gib": settings["host_swap_gib"],
        "min_concurrency": settings["min_concurrency"],
        "margin_gib": settings["margin_gib"],
        "pin_kv_cache": bool(settings["pin_kv_cache"]),
        "notes": list(spec.get("notes") or []),
        "instances": instances,
    }


def _check_model_known(instance: dict, tier: str, filter_name: str) -> None:
    """An instance's model must be a catalog entry or come with its config.json (model_config)."""
    if instance.get("model_config") is not None:
        return
    catalog = load_model_catalog()
    if instance["model"] in catalog:
        return
    close = difflib.get_close_matches(instance["model"], list(catalog), n=3, cutoff=0.5)
    known = sorted(catalog)
    hint = f"; close catalog ids: {', '.join(close)}" if close else f"; catalog ids include: {', '.join(known[:6])}{', ...' if len(known) > 6 else ''}"
    raise PlannerError(
        filter_name,
        f"vllm_models.{instance['model_slot']}",
        f"model {instance['model']!r} has no entry in catalog/models.yml and no model_config "
        f"(give vllm_tier_overrides.{tier}.instances.{instance['name']}.model_config, a Hugging Face config.json){hint}",
    )


def effective_quantization(instance: dict, cap: str, filter_name: str) -> str | None:
    """The --quantization value that runs the kernel the planner assumed.

    vLLM upgrades a 4-bit AWQ / 4- and 8-bit GPTQ checkpoint to its Marlin kernel only when
    --quantization is unset or names the Marlin variant; an explicit ``awq`` forces the slow
    kernel ("... you specified quantization=awq explicitly, so forcing awq",
    vllm-project/vllm#20112). So the resolved value names the Marlin variant where the planner
    counts Marlin (compute capability >= the release's marlin_min_cc), the method elsewhere.
    """
    arch = resolve_model_config(planner_instance(instance), filter_name)
    quant = arch["quantization"]
    if not quant:
        return None
    facts = release_facts(instance.get("vllm_version"), filter_name)
    marlin_cc = memory.parse_compute_capability(facts["quantization"]["marlin_min_cc"], filter_name)
    cc = memory.parse_compute_capability(cap, filter_name)
    if quant["method"] in ("awq", "gptq") and memory._uses_marlin(quant, cc, marlin_cc):
        return f"{quant['method']}_marlin"
    return quant["method"]


def planner_instance(instance: dict) -> dict:
    """The keys the planner reads (DESIGN.md contract 4)."""
    return {k: instance[k] for k in PLANNER_KEYS if k in instance and instance[k] is not None}


def _absolute_budgets(built: dict, gpu: dict) -> None:
    """``gpu_memory_gib`` (an absolute budget) -> the utilization that gives it on this card."""
    total_mib = float(gpu["memory_total_mib"])
    for inst in built["instances"]:
        gib = inst.pop("gpu_memory_gib", None)
        if gib is None:
            continue
        # the largest utilization in ten-thousandths whose budget stays within gib (8 GiB card:
        # 3.2 GiB -> 0.40; 64 GiB: 0.0499, where hundredths would cut the budget to 2.56 GiB)
        inst["gpu_memory_utilization"] = min(int(round(float(gib) * 1024 * 10000 / total_mib, 6)) / 10000, 1.0)
        inst["gpu_memory_gib"] = float(gib)


def _release_notes(built: dict) -> list[str]:
    """What the operator should know about the settings the release cannot take."""
    notes = []
    versions = {release_facts(inst.get("vllm_version"))["vllm_version"] for inst in built["instances"]}
    for version in sorted(versions):
        facts = release_facts(version)
        if built.get("swap_space_gib") and not facts["flags"]["swap_space"]:
            notes.append(
                f"swap_space_gib {built['swap_space_gib']} (the guide's SWAP_SPACE) is not passed to vLLM {version}, "
                "which has no --swap-space (preempted requests are recomputed); the host's swap file is host_swap_gib"
            )
    return notes


def resolve_one(catalog: dict, tier: str, gpu: dict, models: dict | None, overrides: dict | None, filter_name: str) -> dict:
    """Build and plan one tier on ``gpu``: the resolved tier (fits, reasons, instances with plans)."""
    built = build_tier(catalog, tier, models, overrides, filter_name)
    cap = str(gpu["compute_capability"])
    for inst in built["instances"]:
        _check_model_known(inst, built["name"], filter_name)
        arch = resolve_model_config(planner_instance(inst), filter_name)
        inst["dtype"] = memory.choose_dtype(cap, inst.get("dtype"), arch["torch_dtype"], filter_name)
        inst["quantization"] = effective_quantization(inst, cap, filter_name)
        inst["vllm_version"] = release_facts(inst.get("vllm_version"), filter_name)["vllm_version"]
    _absolute_budgets(built, gpu)
    auto = [i for i, inst in enumerate(built["instances"]) if inst["gpu_memory_utilization"] == "auto"]
    solver_reasons: list[str] = []
    if auto:
        solved = _solve(built, gpu, auto, filter_name, solver_reasons)
        for i in auto:
            built["instances"][i]["gpu_memory_utilization"] = round(float(solved[i]), 4)
    built["utilization_solved"] = [built["instances"][i]["name"] for i in auto]
    plan = multi.plan_instances([planner_instance(inst) for inst in built["instances"]], gpu, filter_name)
    if built["pin_kv_cache"] and plan["fits"] and not solver_reasons:
        plan = _pin_kv_caches(built, plan, gpu, filter_name)
    for inst, inst_plan in zip(built["instances"], plan["instances"]):
        inst["plan"] = inst_plan
        inst.setdefault("kv_cache_memory_bytes", None)
        # unset (null): the model's own maximum, written out so the rendered command says it
        inst["max_model_len"] = inst_plan["max_model_len"]
    built["fits"] = bool(plan["fits"]) and not solver_reasons
    built["reasons"] = solver_reasons + [r for r in plan["reasons"] if r not in solver_reasons]
    built["total_needs_gib"] = plan["total_needs_gib"]
    built["free_after_gib"] = plan["free_after_gib"]
    built["notes"] = built["notes"] + _release_notes(built)
    return built


def _pin_kv_caches(built: dict, plan: dict, gpu: dict, filter_name: str) -> dict:
    """Pin each instance's KV cache to what its solved utilization gives, in whole blocks.

    With --kv-cache-memory-bytes vLLM skips the profile's KV sizing, so a concurrent start or
    another process on the GPU cannot shrink the cache (vllm-project/vllm#55827); the pinned
    plan still adds up budgets and CUDA contexts side by side.
    """
    for inst, inst_plan in zip(built["instances"], plan["instances"]):
        facts = release_facts(inst["vllm_version"], filter_name)
        if not facts["flags"]["kv_cache_memory_bytes"] or inst.get("kv_cache_memory_bytes"):
            continue
        block_bytes = inst_plan["kv_bytes_per_token"] * int(facts["block_size"])
        inst["kv_cache_memory_bytes"] = int(inst_plan["kv_cache_bytes"]) // block_bytes * block_bytes
    return multi.plan_instances([planner_instance(inst) for inst in built["instances"]], gpu, filter_name)


def _is_fit_error(err: PlannerError) -> bool:
    """The solver's "cannot fit" errors name the instance list, bad input names a field."""
    return err.field == "instances" or err.field.startswith("instances[")


def _solve(built: dict, gpu: dict, auto: list[int], filter_name: str, reasons: list[str]) -> list[float]:
    """Utilizations for the `auto` instances; when they cannot fit together, each one's own
    smallest utilization (or the whole card) so the plan can still report what it would need."""
    args = (int(built["min_concurrency"]), float(built["margin_gib"]), filter_name)
    instances = [planner_instance({**inst, "gpu_memory_utilization": None}) for inst in built["instances"]]
    try:
        return multi.solve_utilization(instances, gpu, *args)
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
            alone.append(float(multi.solve_utilization([inst], {k: v for k, v in gpu.items() if k != "memory_free_mib"}, *args)[0]))
        except PlannerError as err:
            if not _is_fit_error(err):
                raise
            alone.append(1.0)
    return alone
