"""The GPU memory plan as a picture: one SVG per resolved tier.

One stacked bar per instance, in the order the instances start. Each bar stands on the memory
that is already taken when its instance starts (other processes and the instances before it),
so the tops show how the card fills up and the last top against the card's total is the
headroom. The segments are the planner's own figures (``lib/libra_planner/memory.py``
``plan_instance``): CUDA context, weights, activations, non-torch memory, the KV cache and the
CUDA graphs (inside the ``gpu_memory_utilization`` budget or above it, as the plan says). A
dashed line marks the top of each instance's budget (utilization x total). What rises above the
card's total is painted red, and so is the KV cache a plan lacks to hold one ``max_model_len``
request; the first reason of a plan that does not fit is printed under the bars.

Pure Python, no dependencies: ``render_plan_svg(resolved_tier, gpu=None) -> str``.
"""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape

GIB = 1 << 30

# (key in the plan, CSS class suffix, short label inside the bar, legend label, colour)
SEGMENTS = {
    "context": ("cuda_context_gib", "context", "context", "CUDA context (outside the budget)", "#495057"),
    "weights": ("weights_gib", "weights", "weights", "weights", "#1c7ed6"),
    "activations": ("activation_gib", "activations", "activ.", "activations (profile peak)", "#f08c00"),
    "compile": ("cold_compile_gib", "compile", "compile", "cold torch.compile peak (while starting)", "#ffc078"),
    "non_torch": ("non_torch_gib", "non-torch", "non-torch", "non-torch memory (NCCL, cuBLAS...)", "#adb5bd"),
    "graphs": ("cuda_graph_gib", "graphs", "graphs", "CUDA graphs", "#9c36b5"),
    "kv": ("kv_cache_gib", "kv", "KV cache", "KV cache", "#2f9e44"),
}
OTHER_COLOUR = "#dee2e6"
OVERFLOW_COLOUR = "#e03131"
HEADROOM_COLOUR = "#0b7285"
FONT = 12
# Width of one character, as a share of the font size, used to keep labels apart: generous for
# a proportional sans-serif font (digits and lower case are about 0.55 em wide).
CHAR_EM = 0.62

BAR_WIDTH = 120
SLOT_WIDTH = 330  # bar + its label column
LEFT = 80
RIGHT_COLUMN = 240
TOP = 70
CHART_HEIGHT = 400
MIN_WIDTH = 800


class PictureError(ValueError):
    """Bad input to the picture; the message names the field."""


def text_width(text: str, size: float = FONT) -> float:
    return len(text) * size * CHAR_EM


def _field(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
        raise PictureError(f"vllm_plan_svg: {where}.{key} is missing")
    return mapping[key]


def _float(mapping: Any, key: str, where: str) -> float:
    value = _field(mapping, key, where)
    if isinstance(value, bool):
        raise PictureError(f"vllm_plan_svg: {where}.{key} must be a number (got {value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PictureError(f"vllm_plan_svg: {where}.{key} must be a number (got {value!r})") from None
    if not math.isfinite(number):
        raise PictureError(f"vllm_plan_svg: {where}.{key} must be finite (got {value!r})")
    return number


def _fmt(gib: float) -> str:
    return f"{gib:.2f} GiB"


def _nice_step(span: float) -> float:
    """A tick step of 1, 2 or 5 x 10^n that gives about six ticks."""
    raw = span / 6
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def _wrap(text: str, width_px: float, size: float) -> list[str]:
    limit = max(int(width_px / (size * CHAR_EM)), 10)
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if len(candidate) > limit and line:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def _truncate(text: str, width_px: float, size: float) -> str:
    limit = max(int(width_px / (size * CHAR_EM)), 4)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _spread(items: list[dict], gap: float, lowest: float | None = None) -> list[dict]:
    """Move label anchors (``y``, baseline) apart by at least ``gap``, keeping their order."""
    items = sorted(items, key=lambda item: item["y"])
    for i in range(1, len(items)):
        if items[i]["y"] - items[i - 1]["y"] < gap:
            items[i]["y"] = items[i - 1]["y"] + gap
    if lowest is not None and items and items[-1]["y"] > lowest:
        shift = items[-1]["y"] - lowest
        for item in items:
            item["y"] -= shift
    return items


def _uses(bar: dict) -> list[str]:
    """What an instance takes: while it starts, and once a cold compile's peak is over."""
    peak = bar["top"] - bar["base"]
    compile_gib = dict(bar["segments"]).get("compile", 0.0)
    if compile_gib < 0.005:
        return [f"uses {_fmt(peak)}"]
    return [f"uses {_fmt(peak)} starting", f"holds {_fmt(peak - compile_gib)} after"]


def instance_layout(tier: dict, gpu: dict | None = None) -> dict:
    """Geometry in GiB, before any pixel: what the SVG draws, one entry per instance.

    Each instance: ``base`` (memory taken when it starts), ``segments`` [(name, gib)] bottom
    to top, ``budget_top`` (top of its utilization budget), ``top`` (top of its segments),
    ``overflow`` (GiB above the card's total) and ``shortfall`` (KV cache missing for one
    ``max_model_len`` request, drawn above the bar).
    """
    gpu = gpu if gpu is not None else _field(tier, "gpu", "tier")
    total = _float(gpu, "memory_total_mib", "gpu") / 1024
    free = gpu.get("memory_free_mib") if isinstance(gpu, dict) else None
    usable = min(float(free) / 1024, total) if isinstance(free, (int, float)) and not isinstance(free, bool) else total
    instances = _field(tier, "instances", "tier")
    if not isinstance(instances, list) or not instances:
        raise PictureError("vllm_plan_svg: tier.instances must be a non-empty list")
    bars = []
    for index, inst in enumerate(instances):
        where = f"instances[{index}].plan"
        plan = _field(inst, "plan", f"instances[{index}]")
        gib = {name: max(_float(plan, spec[0], where), 0.0) for name, spec in SEGMENTS.items()}
        inside = bool(_field(plan, "cuda_graphs_in_budget", where))
        order = ["context", "weights", "activations", "compile", "non_torch"] + (["graphs", "kv"] if inside else ["kv", "graphs"])
        base = max(total - _float(plan, "free_before_gib", where), 0.0)
        budget = _float(plan, "budget_gib", where)
        top = base + sum(gib[name] for name in order)
        budget_top = base + gib["context"] + budget
        needed_kv = _float(plan, "min_kv_tokens_needed", where) * _float(plan, "kv_bytes_per_token", where) / GIB
        non_kv = _float(plan, "non_kv_bytes", where) / GIB
        shortfall = max(non_kv + needed_kv - budget, 0.0)
        if shortfall < 0.005:
            shortfall = 0.0
        bars.append(
            {
                "index": index,
                "name": inst.get("name") or f"instance {index + 1}",
                "model": plan.get("model") or inst.get("model") or "",
                "util": _float(plan, "gpu_memory_utilization", where),
                "max_model_len": int(_float(plan, "max_model_len", where)),
                "kv_tokens": int(_float(plan, "kv_cache_tokens", where)),
                "fits": bool(_field(plan, "fits", where)),
                "reasons": list(plan.get("reasons") or []),
                "base": base,
                "segments": [(name, gib[name]) for name in order],
                "budget": budget,
                "budget_top": budget_top,
                "top": top,
                "overflow": max(top - total, 0.0) if top - total >= 0.005 else 0.0,
                "shortfall": shortfall,
            }
        )
    return {
        "total": total,
        "usable": usable,
        "other": total - usable,
        "fits": bool(_field(tier, "fits", "tier")),
        "reasons": list(tier.get("reasons") or []),
        "name": tier.get("name") or "",
        "gpu_name": gpu.get("name") or "GPU",
        "bars": bars,
    }


def render_plan_svg(tier: dict, gpu: dict | None = None, title: str | None = None) -> str:
    """The SVG text of one resolved tier (``vllm_tier_resolve``) on ``gpu`` (default: the tier's)."""
    if not isinstance(tier, dict):
        raise PictureError(f"vllm_plan_svg: the input must be one resolved tier (a mapping), got {type(tier).__name__}")
    lay = instance_layout(tier, gpu)
    total, bars = lay["total"], lay["bars"]
    # Headroom from the geometry itself: the card's total minus the highest top.
    highest = max(max(b["top"] for b in bars), lay["other"])
    headroom = total - highest
    ymax = max(total, max(b["top"] + b["shortfall"] for b in bars)) * 1.08
    scale = CHART_HEIGHT / ymax  # px per GiB
    bottom = TOP + CHART_HEIGHT
    width = max(LEFT + SLOT_WIDTH * len(bars) + RIGHT_COLUMN, MIN_WIDTH)

    def y(gib: float) -> float:
        return bottom - gib * scale

    out: list[str] = []
    texts: list[tuple[float, float, str, float, str]] = []  # x, y, text, size, anchor (for layout)

    def text(x: float, yy: float, value: str, size: float = FONT, anchor: str = "start", cls: str = "", fill: str = "#212529", weight: str = "normal") -> None:
        texts.append((x, yy, value, size, anchor))
        klass = f' class="{cls}"' if cls else ""
        out.append(
            f'<text x="{x:.1f}" y="{yy:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{klass}>{escape(value)}</text>'
        )

    def rect(x: float, y0: float, w: float, h: float, fill: str, cls: str, extra: str = "") -> None:
        out.append(f'<rect class="{cls}" x="{x:.2f}" y="{y0:.3f}" width="{w:.2f}" height="{h:.3f}" fill="{fill}"{extra}/>')

    def line(x1: float, y1: float, x2: float, y2: float, stroke: str, cls: str, dash: str = "", w: float = 1.5) -> None:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.3f}" x2="{x2:.1f}" y2="{y2:.3f}" stroke="{stroke}" stroke-width="{w}"{dashed}/>')

    # Title
    verdict = "fits" if lay["fits"] else "does NOT fit"
    heading = title or f"tier {lay['name']} on {lay['gpu_name']} ({_fmt(total)})"
    text(LEFT, 28, heading, 16, weight="bold")
    text(LEFT, 50, f"verdict: {verdict}", 13, cls="verdict", fill="#2b8a3e" if lay["fits"] else OVERFLOW_COLOUR, weight="bold")

    # Axis and ticks
    step = _nice_step(ymax)
    line(LEFT - 10, TOP, LEFT - 10, bottom, "#868e96", "axis", w=1)
    tick = 0.0
    while tick <= ymax + 1e-9:
        line(LEFT - 14, y(tick), width - RIGHT_COLUMN + 10, y(tick), "#f1f3f5", "grid", w=1)
        text(LEFT - 18, y(tick) + 4, f"{tick:g}", 11, anchor="end", fill="#495057")
        tick += step
    text(LEFT - 18, TOP - 12, "GiB", 11, anchor="end", fill="#495057")

    # Memory other processes hold, under the first bar
    right_labels: list[dict] = []
    if lay["other"] > 0.005:
        rect(LEFT, y(lay["other"]), SLOT_WIDTH * len(bars) - (SLOT_WIDTH - BAR_WIDTH), lay["other"] * scale, OTHER_COLOUR, "seg seg-other", f' data-gib="{lay["other"]:.4f}"')

    # Bars
    for bar in bars:
        x = LEFT + bar["index"] * SLOT_WIDTH
        level = bar["base"]
        for name, gib in bar["segments"]:
            key, cls, short, _legend, colour = SEGMENTS[name]
            if gib > 0:
                rect(x, y(level + gib), BAR_WIDTH, gib * scale, colour, f"seg seg-{cls}", f' data-instance="{bar["index"]}" data-gib="{gib:.4f}" stroke="#ffffff" stroke-width="0.5"')
                label = f"{short} {gib:.2f}"
                in_card = level + gib <= total + 1e-9
                if in_card and gib * scale >= FONT + 4 and text_width(label, 11) <= BAR_WIDTH - 6:
                    text(x + BAR_WIDTH / 2, y(level + gib / 2) + 4, label, 11, anchor="middle", fill="#ffffff" if name != "non_torch" else "#212529")
            level += gib
        # Overflow above the card's total
        if bar["overflow"] > 0:
            over_bottom = max(total, bar["base"])
            rect(x - 3, y(bar["top"]), BAR_WIDTH + 6, (bar["top"] - over_bottom) * scale, OVERFLOW_COLOUR, "overflow", f' data-instance="{bar["index"]}" data-gib="{bar["top"] - over_bottom:.4f}"')
        # KV cache missing for one max_model_len request
        if bar["shortfall"] > 0:
            rect(x, y(bar["top"] + bar["shortfall"]), BAR_WIDTH, bar["shortfall"] * scale, OVERFLOW_COLOUR, "overflow shortfall", f' data-instance="{bar["index"]}" data-gib="{bar["shortfall"]:.4f}"')
        # Utilization budget line
        line(x - 6, y(bar["budget_top"]), x + BAR_WIDTH + 10, y(bar["budget_top"]), "#212529", "budget", "6 3", 2)
        # Labels right of the bar, kept apart
        labels = [
            {"y": y(bar["budget_top"]) + 4, "text": f"util {bar['util']:.2f}: budget {_fmt(bar['budget'])}", "fill": "#212529", "cls": "budget-label"},
            *({"y": y(bar["top"]) + 4 + 14 * i, "text": text_, "fill": "#495057", "cls": "uses-label"}
              for i, text_ in enumerate(_uses(bar))),
        ]
        if bar["overflow"] > 0:
            labels.append({"y": y(bar["top"]) - 12, "text": f"over the card by {_fmt(bar['overflow'])}", "fill": OVERFLOW_COLOUR, "cls": "overflow-label"})
        if bar["shortfall"] > 0:
            labels.append({"y": y(bar["top"] + bar["shortfall"]) + 4, "text": f"KV cache short by {_fmt(bar['shortfall'])}", "fill": OVERFLOW_COLOUR, "cls": "overflow-label"})
        for item in _spread(labels, FONT + 4, lowest=bottom - 2):
            text(x + BAR_WIDTH + 14, item["y"], item["text"], 12, cls=item["cls"], fill=item["fill"])
        # Caption under the bar
        cap_y = bottom + 20
        text(x, cap_y, _truncate(f"{bar['index'] + 1}. {bar['name']}: {bar['model']}", SLOT_WIDTH - 20, 12), 12, weight="bold")
        text(x, cap_y + 16, f"gpu_memory_utilization {bar['util']:.2f}, max_model_len {bar['max_model_len']}", 11, fill="#495057")
        text(x, cap_y + 31, f"KV cache holds {bar['kv_tokens']} tokens", 11, fill="#495057")
        figures = [f"{SEGMENTS[name][2]} {gib:.2f}" for name, gib in bar["segments"]]
        # three lines of at most three figures: a dual's captions sit side by side
        for line_no in range(0, len(figures), 3):
            tail = " GiB" if line_no + 3 >= len(figures) else ""
            text(x, cap_y + 46 + 15 * (line_no // 3), ", ".join(figures[line_no:line_no + 3]) + tail, 11, fill="#495057", cls="figures")

    # The card: total line, usable bracket, headroom bracket
    line(LEFT - 10, y(total), width - RIGHT_COLUMN + 10, y(total), "#212529", "total", w=2.5)
    col = width - RIGHT_COLUMN + 20
    card_labels = [{"y": y(total) + 4, "text": f"card total {_fmt(total)}", "fill": "#212529", "cls": "total-label"}]
    if lay["other"] > 0.005:
        line(col - 6, y(total), col - 6, y(lay["other"]), "#495057", "usable", w=2)
        card_labels.append({"y": y((total + lay["other"]) / 2) + 4, "text": f"usable {_fmt(lay['usable'])}", "fill": "#495057", "cls": "usable-label"})
        card_labels.append({"y": y(lay["other"] / 2) + 4, "text": f"other processes {_fmt(lay['other'])}", "fill": "#495057", "cls": "other-label"})
    else:
        card_labels[0]["text"] = f"card total = usable {_fmt(total)}"
    if headroom >= 0.005:
        hx = col - 14
        line(hx, y(total), hx, y(highest), HEADROOM_COLOUR, "headroom", w=3)
        card_labels.append({"y": y(total - headroom / 2) + 4, "text": f"headroom {_fmt(headroom)}", "fill": HEADROOM_COLOUR, "cls": "headroom-label"})
    elif headroom < -0.005:
        card_labels.append({"y": y(highest) + 4, "text": f"needs {_fmt(-headroom)} more", "fill": OVERFLOW_COLOUR, "cls": "overflow-label"})
    for item in _spread(card_labels, FONT + 4, lowest=bottom - 2):
        text(col, item["y"], item["text"], 12, cls=item["cls"], fill=item["fill"], weight="bold" if item["cls"] == "total-label" else "normal")

    # Legend: a grid of equal columns
    entries = [(SEGMENTS[name][4], SEGMENTS[name][3]) for name in ("context", "weights", "activations", "compile", "non_torch", "graphs", "kv")]
    entries += [("#212529", "dashed line: top of the utilization budget"), (OVERFLOW_COLOUR, "red: over the card / KV cache missing")]
    col_w = max(text_width(label, 11) for _c, label in entries) + 34
    per_row = max(int((width - LEFT - 10) // col_w), 1)
    legend_y = bottom + 115
    for i, (colour, label) in enumerate(entries):
        lx = LEFT + (i % per_row) * col_w
        ly = legend_y + (i // per_row) * 18
        out.append(f'<rect class="legend" x="{lx:.1f}" y="{ly - 10:.1f}" width="12" height="12" fill="{colour}"/>')
        text(lx + 16, ly, label, 11)
    legend_y += ((len(entries) - 1) // per_row) * 18

    # First reason of a plan that does not fit
    end_y = legend_y + 10
    if not lay["fits"]:
        # The planner's cause line ("why: ...") when it gives one, else its first reason.
        why = [r[len("why: "):] for r in lay["reasons"] if r.startswith("why: ")]
        reason = (why[0] if why else lay["reasons"][0]) if lay["reasons"] else next(
            (r for b in bars for r in b["reasons"]), "the plan does not fit")
        end_y += 14
        for i, part in enumerate(_wrap(f"Why: {reason}", width - LEFT - 20, 12)[:4]):
            text(LEFT, end_y + i * 16, part, 12, cls="reason", fill=OVERFLOW_COLOUR)
        end_y += 16 * min(len(_wrap(f"Why: {reason}", width - LEFT - 20, 12)), 4)
    height = int(end_y + 14)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" data-px-per-gib="{scale:.6f}" data-bottom="{bottom}">'
    )
    background = f'<rect class="background" x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>'
    return "\n".join([head, f"<title>{escape(heading)}: {verdict}</title>", background, *out, "</svg>"]) + "\n"


def text_boxes(svg_texts: list[tuple[float, float, str, float, str]]) -> list[tuple[float, float, float, float]]:
    """Approximate boxes (x0, y0, x1, y1) of text elements: for overlap checks."""
    boxes = []
    for x, yy, value, size, anchor in svg_texts:
        w = text_width(value, size)
        x0 = x - w / 2 if anchor == "middle" else x - w if anchor == "end" else x
        boxes.append((x0, yy - size * 0.8, x0 + w, yy + size * 0.2))
    return boxes
