"""Several vLLM instances on one GPU, started one after the other.

Each instance is a separate process with its own CUDA context. vLLM's V1 engine checks at
startup that the free memory (after its own context) is at least ``utilization x total`` and
then uses its budget as if alone (its memory snapshot baseline subtracts what other processes
already hold). So the second instance must start only after the first has allocated its KV
cache (compose ``depends_on: condition: service_healthy``), and the budgets, contexts and
CUDA-graph memory of all instances must fit the GPU side by side.
"""

from __future__ import annotations

import math

from .errors import PlannerError
from .memory import GIB, _ceil_div, _gib, gpu_memory, plan_instance


def _check_list(instances: list[dict], filter_name: str) -> None:
    if not isinstance(instances, list) or not instances:
        raise PlannerError(filter_name, "instances", "must be a non-empty list of instance mappings")
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise PlannerError(filter_name, f"instances[{index}]", f"must be a mapping (got {type(instance).__name__})")


def _label(index: int, instance: dict) -> str:
    name = instance.get("name") or instance.get("model") or "model_config"
    return f"instance {index + 1} ({name})"


def started_in_order(steps) -> int:
    """The most GPU memory instances started one after another need at any time.

    ``steps``: per instance, in start order, ``(start, held)``: what it takes while it starts
    (its budget, or its start peak, plus what sits outside the budget) and what it holds once
    started (less a cold compile's peak, plan_instance ``needs_bytes``), which the next one finds taken.
    """
    need = held = 0
    for start, keeps in steps:
        need = max(need, held + start)
        held += keeps
    return need


def plan_instances(instances: list[dict], gpu: dict, filter_name: str = "vllm_multi_plan") -> dict:
    """Plan ``instances`` started in order on one GPU.

    Returns ``{fits, reasons, instances: [plan...], total_budget_gib, total_needs_gib,
    free_after_gib}``; each plan is ``plan_instance`` of that instance against the memory the
    earlier instances leave free.
    """
    _check_list(instances, filter_name)
    mem = gpu_memory(gpu, filter_name)
    total = mem["total"]
    free = mem["free"] if mem["free"] is not None else total
    plans: list[dict] = []
    reasons: list[str] = []
    total_budget = 0
    for index, instance in enumerate(instances):
        gpu_now = dict(gpu)
        gpu_now["memory_free_mib"] = max(free, 0) / (1 << 20)
        gpu_now.pop("memory_used_mib", None)
        plan = plan_instance(instance, gpu_now, filter_name)
        plan = dict(plan, name=instance.get("name"), free_before_gib=_gib(max(free, 0)))
        plans.append(plan)
        label = _label(index, instance)
        for reason in plan["reasons"]:
            reasons.append(f"{label}: {reason}")
        total_budget += plan["budget_bytes"]
        free -= plan["needs_bytes"]
    total_needs = started_in_order((p["start_peak_bytes"], p["needs_bytes"]) for p in plans)
    if len(instances) > 1 and reasons:
        parts = " + ".join(f"{p['gpu_memory_utilization']:.2f}" for p in plans)
        reasons.append(
            f"together the instances need {_gib(total_needs):.2f} GiB (budgets {parts} of {_gib(total):.2f} GiB "
            f"plus each one's CUDA context and CUDA graphs) but the GPU has "
            f"{_gib(mem['free'] if mem['free'] is not None else total):.2f} GiB: lower the utilizations "
            "(gpu_memory_utilization: auto sizes the smallest that work), shorten max_model_len, use a smaller "
            "or 2-bit model for one slot, run a single instance, or use a bigger GPU"
        )
    return {
        "fits": not reasons,
        "reasons": reasons,
        "instances": plans,
        "total_budget_gib": _gib(total_budget),
        "total_needs_gib": _gib(total_needs),
        "free_after_gib": _gib(free),
    }


def solve_utilization(
    instances: list[dict],
    gpu: dict,
    min_concurrency: int = 1,
    margin_gib: float = 0.25,
    filter_name: str = "vllm_solve_utilization",
) -> list[float]:
    """Smallest ``gpu_memory_utilization`` per instance (rounded up to 0.01).

    Each one holds weights + activations + non-torch memory + the KV cache for
    ``max_model_len x min_concurrency`` tokens + ``margin_gib``. Raises PlannerError when the
    instances cannot fit side by side even at those utilizations.
    """
    _check_list(instances, filter_name)
    if isinstance(min_concurrency, bool) or not isinstance(min_concurrency, (int, float)) or min_concurrency <= 0:
        raise PlannerError(filter_name, "min_concurrency", f"must be a number > 0 (got {min_concurrency!r})")
    if (
        isinstance(margin_gib, bool)
        or not isinstance(margin_gib, (int, float))
        or not math.isfinite(margin_gib)
        or margin_gib < 0
    ):
        raise PlannerError(filter_name, "margin_gib", f"must be a number >= 0 (got {margin_gib!r})")
    mem = gpu_memory(gpu, filter_name)
    total = mem["total"]
    available = mem["free"] if mem["free"] is not None else total
    margin = int(round(margin_gib * GIB))
    utils: list[float] = []
    steps: list[tuple[int, int]] = []  # (start, held) per instance: started_in_order
    for index, instance in enumerate(instances):
        # Plan once at the largest possible utilization: the non-KV figures do not depend on it.
        probe = dict(instance, gpu_memory_utilization=1.0)
        plan = plan_instance(probe, gpu, filter_name)
        # min_concurrency requests of max_model_len (sliding-window layers hold their window
        # only), and the larger of the tier's margin and the verdict's margin for what varies
        # between two starts (plan_instance verdict_margin_bytes)
        kv = int(math.ceil(plan["kv_bytes_per_request"] * min_concurrency))
        need = plan["non_kv_bytes"] + kv + max(margin, plan["verdict_margin_bytes"])
        hundredths = _ceil_div(need * 100, total)
        while int(hundredths * total // 100) < need:
            hundredths += 1
        if hundredths > 100:
            raise PlannerError(
                filter_name,
                f"instances[{index}]",
                f"{_label(index, instance)} needs {_gib(need):.2f} GiB ({min_concurrency} x {plan['max_model_len']} "
                f"tokens of KV cache plus weights, activations and a {margin_gib} GiB margin), more than the "
                f"GPU's {_gib(total):.2f} GiB: shorten max_model_len or pick a smaller/quantized model",
            )
        util = hundredths / 100
        utils.append(util)
        start = int(util * total) + plan["outside_budget_bytes"]
        steps.append((start, start - plan["cold_compile_bytes"]))
    needed = started_in_order(steps)
    if needed > available:
        parts = " + ".join(f"{u:.2f}" for u in utils)
        raise PlannerError(
            filter_name,
            "instances",
            f"even the smallest utilizations ({parts}) need {_gib(needed):.2f} GiB with each instance's CUDA context "
            f"and CUDA graphs, but the GPU has {_gib(available):.2f} GiB: shorten max_model_len, lower "
            "min_concurrency, use a smaller or 2-bit model for one slot, or run fewer instances",
        )
    return utils
