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


# Columns of the budget table: (name, unit line, width). Memory in GiB (2^30 bytes).
COLUMNS = (
    ("util", "share", 5),
    ("weights", "GiB", 7),
    ("activations", "GiB", 11),
    ("compile", "GiB", 7),
    ("overhead", "GiB", 8),
    ("KV-cache", "GiB", 8),
    ("KV-tokens", "tokens", 9),
    ("full-length", "requests", 11),
    ("max_num_seqs", "requests", 12),
    ("headroom", "GiB", 8),
)
LEGEND = (
    "columns: util = gpu_memory_utilization, the share of the card's total memory vLLM takes as its budget;",
    "  compile = a cold torch.compile's peak while vLLM starts (every new container compiles; 0 when warm",
    "  or eager); overhead = non-torch memory + CUDA context + CUDA graphs; KV-cache, KV-tokens = the KV cache's size (*: pinned",
    "  with --kv-cache-memory-bytes) and the tokens it holds; full-length = requests of max_model_len",
    "  ({lens} tokens) the KV cache holds at once; max_num_seqs = requests the server runs at once (more wait",
    "  in its queue); headroom = GPU memory left once this instance and those before it have started",
)


def _header() -> list[str]:
    names = f"{'instance':<11} {'model':<38} " + "  ".join(f"{n:>{w}}" for n, _, w in COLUMNS) + "  verdict"
    units = f"{'':<11} {'':<38} " + "  ".join(f"{u:>{w}}" for _, u, w in COLUMNS)
    return [names, units.rstrip()]


def _row(inst: dict) -> str:
    plan = inst.get("plan") or {}
    cells = (
        _cell(_num(inst.get("gpu_memory_utilization"))),
        _cell(_num(plan.get("weights_gib"))),
        _cell(_num(plan.get("activation_gib"))),
        _cell(_num(plan.get("cold_compile_gib"))),
        _cell(_overhead(plan)),
        _cell(_num(plan.get("kv_cache_gib"))) + ("*" if plan.get("kv_cache_memory_bytes") else ""),
        _cell(_num(plan.get("kv_cache_tokens")), "{:.0f}"),
        _cell(_num(plan.get("max_concurrency"))),
        _cell(_num(plan.get("max_num_seqs") if plan else inst.get("max_num_seqs")), "{:.0f}"),
        _cell(_num(plan.get("headroom_gib"))),
    )
    body = "  ".join(f"{c:>{w}}" for c, (_, _, w) in zip(cells, COLUMNS))
    return f"{inst.get('name', ''):<11} {str(inst.get('model', ''))[:38]:<38} {body}  {'fits' if plan.get('fits') else 'no'}"


def _needs_line(resolved: dict, total_gib: float) -> str:
    """The one figure the plan needs and the one the card gives (the resolved tier's needs_gib, gives_gib)."""
    needs = _num(resolved.get("needs_gib"))
    if needs is None:
        needs = _num(resolved.get("total_needs_gib"))
    gives = _num(resolved.get("gives_gib"))
    gives = total_gib if gives is None else gives
    text = f"   needs {_cell(needs)} GiB; the card has {gives:.2f} GiB"
    if resolved.get("fits"):
        text += f"; free after start {_cell(_num(resolved.get('free_after_gib')))} GiB"
    return text


def plan_table(resolved_list, summary: bool = False) -> list[str]:
    """Text lines: per tier, a row per instance with its GPU memory budget, then the verdict.

    Below a plan that does not fit: one line with what it needs and what the card gives, why,
    and the advice, each item re-planned with its setting applied (whatif.advice).
    """
    if isinstance(resolved_list, dict):
        resolved_list = [resolved_list]
    lines: list[str] = []
    lengths: set[int] = set()
    for resolved in resolved_list:
        gpu = resolved.get("gpu") or {}
        total_gib = _gib(gpu.get("memory_total_mib") or 0)
        verdict = "FITS" if resolved.get("fits") else "DOES NOT FIT"
        asked = f" (requested {resolved['requested']})" if resolved.get("requested") not in (None, resolved.get("name")) else ""
        lines.append(
            f"== tier {resolved.get('name')}{asked} on {gpu.get('name') or 'GPU'} "
            f"({total_gib:.2f} GiB, compute capability {gpu.get('compute_capability')}): {verdict}"
        )
        lines.extend(_header())
        for inst in resolved.get("instances", []):
            lines.append(_row(inst))
            if _num(inst.get("max_model_len")) is not None:
                lengths.add(int(inst["max_model_len"]))
        versions = sorted({str((i.get("plan") or {}).get("vllm_version")) for i in resolved.get("instances", [])})
        margins = [float((i.get("plan") or {}).get("verdict_margin_gib") or 0) for i in resolved.get("instances", [])]
        lines.append(_needs_line(resolved, total_gib))
        lines.append(
            f"   dtype {', '.join(sorted({str(i.get('dtype')) for i in resolved.get('instances', [])}))}; "
            f"vLLM {', '.join(versions)}; compose {resolved.get('compose_file')}, VLLM_MODE={resolved.get('vllm_mode')}"
        )
        if any(margins):
            lines.append(
                f"   the verdict holds {max(margins):.2f} GiB per instance back for what varies between starts "
                "(the CUDA-graph estimate, a cold torch.compile cache)"
            )
        reasons = list(resolved.get("reasons") or [])
        if resolved.get("advice") or (not resolved.get("fits") and any(r.startswith("why: ") for r in reasons)):
            # need line (already above), why, then the advice: any one item alone makes it fit
            for reason in reasons:
                if reason.startswith("why: "):
                    lines.append(f"   {reason}")
            items = [r for r in reasons if not r.startswith("why: ") and " needs " not in r.split(";")[0]]
            if resolved.get("advice"):
                lines.append("   any one of these fits (each re-planned with it applied):")
            lines.extend(f"   - {r}" for r in items)
        else:
            lines.extend(f"   - {reason}" for reason in reasons)
        for note in resolved.get("notes") or []:
            lines.append(f"   note: {note}")
        if not summary and resolved.get("candidates"):
            lines.append(
                "   candidates: "
                + ", ".join(f"{c['name']}={'fits' if c['fits'] else 'no'}" for c in resolved["candidates"])
            )
    if lines:
        lens = "/".join(str(n) for n in sorted(lengths)) or "-"
        lines.extend(line.format(lens=lens) for line in LEGEND)
    return lines


def max_table(resolved_list: list[dict]) -> list[str]:
    """Text lines: what tier max runs on each GPU (one line per resolved max tier, with ``preset``)."""
    lines = [
        f"{'preset':<11} {'memory':>6} {'compute':>10}  {'model':<38} {'util':>5} {'weights':>7} {'KV-cache':>8} {'KV-tokens':>9}  verdict",
        f"{'':<11} {'GiB':>6} {'capability':>10}  {'':<38} {'share':>5} {'GiB':>7} {'GiB':>8} {'tokens':>9}",
    ]
    for resolved in resolved_list:
        gpu = resolved.get("gpu") or {}
        inst = (resolved.get("instances") or [{}])[0]
        plan = inst.get("plan") or {}
        lines.append(
            f"{str(resolved.get('preset', '')):<11} {_gib(gpu.get('memory_total_mib') or 0):>6.1f} {str(gpu.get('compute_capability')):>10}  "
            f"{str(inst.get('model', '-'))[:38]:<38} {_cell(_num(inst.get('gpu_memory_utilization'))):>5} "
            f"{_cell(_num(plan.get('weights_gib'))):>7} {_cell(_num(plan.get('kv_cache_gib'))):>8} "
            f"{_cell(_num(plan.get('kv_cache_tokens')), '{:.0f}'):>9}  {'fits' if resolved.get('fits') else 'does not fit'}"
        )
    return lines
