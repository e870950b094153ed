"""Text tables of resolved tiers (``vllm_plan_table``): one line per instance, then the verdict.

One reason to change: how a plan is shown to the operator. Reads the resolved tier dict of
docs/architecture.md and the plan dict of ``plan_instance`` by their documented keys only.
"""

from __future__ import annotations

MIB_PER_GIB = 1024


def _gib(mib: float) -> float:
    return mib / MIB_PER_GIB


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _cell(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _overhead(plan: dict) -> float | None:
    """Non-torch memory, the CUDA context and CUDA graphs: what is neither weights, activations nor KV."""
    if not plan:
        return None
    return float(plan["non_torch_gib"]) + float(plan["cuda_context_gib"]) + float(plan["cuda_graph_gib"])


def _kv_cell(plan: dict) -> str:
    value = _cell(_num(plan.get("kv_cache_gib")))
    return value + ("*" if plan.get("kv_cache_memory_bytes") else "")


def plan_table(resolved_list, summary: bool = False) -> list[str]:
    """Text lines: per tier, a row per instance with its GPU memory budget and the verdict.

    A KV figure marked ``*`` is pinned with --kv-cache-memory-bytes.
    """
    if isinstance(resolved_list, dict):
        resolved_list = [resolved_list]
    header = (
        f"{'instance':<11} {'model':<38} {'util':>5} {'weights':>8} {'activ':>6} {'overhead':>8} "
        f"{'kv_cache':>9} {'tokens':>7} {'conc':>6} {'headroom':>8}  verdict"
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
            lines.append(
                f"{inst.get('name', ''):<11} {str(inst.get('model', ''))[:38]:<38} "
                f"{_cell(_num(inst.get('gpu_memory_utilization'))):>5} "
                f"{_cell(_num(plan.get('weights_gib'))):>8} {_cell(_num(plan.get('activation_gib'))):>6} "
                f"{_cell(_overhead(plan)):>8} {_kv_cell(plan):>9} "
                f"{_cell(_num(plan.get('kv_cache_tokens')), '{:.0f}'):>7} {_cell(_num(plan.get('max_concurrency'))):>6} "
                f"{_cell(_num(plan.get('headroom_gib'))):>8}  {'fits' if plan.get('fits') else 'no'}"
            )
        versions = sorted({str((i.get("plan") or {}).get("vllm_version")) for i in resolved.get("instances", [])})
        margins = [float((i.get("plan") or {}).get("verdict_margin_gib") or 0) for i in resolved.get("instances", [])]
        lines.append(
            f"   needs {_cell(_num(resolved.get('total_needs_gib')))} GiB of {total_gib:.2f} GiB; "
            f"free after start {_cell(_num(resolved.get('free_after_gib')))} GiB; "
            f"dtype {', '.join(sorted({str(i.get('dtype')) for i in resolved.get('instances', [])}))}; "
            f"vLLM {', '.join(versions)}; compose {resolved.get('compose_file')}, VLLM_MODE={resolved.get('vllm_mode')}"
        )
        if any(margins):
            lines.append(
                f"   the verdict holds {max(margins):.2f} GiB per instance back for what varies between starts "
                "(the CUDA-graph estimate, a cold torch.compile cache)"
            )
        for reason in resolved.get("reasons") or []:
            lines.append(f"   - {reason}")
        for note in resolved.get("notes") or []:
            lines.append(f"   note: {note}")
        if not summary and resolved.get("candidates"):
            lines.append(
                "   candidates: "
                + ", ".join(f"{c['name']}={'fits' if c['fits'] else 'no'}" for c in resolved["candidates"])
            )
    return lines


def max_table(resolved_list: list[dict]) -> list[str]:
    """Text lines: what tier max runs on each GPU (one line per resolved max tier, with ``preset``)."""
    lines = [f"{'preset':<11} {'GiB':>6} {'cc':>4}  {'model':<38} {'util':>5} {'weights':>8} {'kv_cache':>8} {'tokens':>7}  verdict"]
    for resolved in resolved_list:
        gpu = resolved.get("gpu") or {}
        inst = (resolved.get("instances") or [{}])[0]
        plan = inst.get("plan") or {}
        lines.append(
            f"{str(resolved.get('preset', '')):<11} {_gib(gpu.get('memory_total_mib') or 0):>6.1f} {str(gpu.get('compute_capability')):>4}  "
            f"{str(inst.get('model', '-'))[:38]:<38} {_cell(_num(inst.get('gpu_memory_utilization'))):>5} "
            f"{_cell(_num(plan.get('weights_gib'))):>8} {_cell(_num(plan.get('kv_cache_gib'))):>8} "
            f"{_cell(_num(plan.get('kv_cache_tokens')), '{:.0f}'):>7}  {'fits' if resolved.get('fits') else 'does not fit'}"
        )
    return lines
