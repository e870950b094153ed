"""The plan picture's geometry, read back from the SVG with xml.etree.

Expected figures come from the plan dict's own keys and the GPU dict, added up here: bar
heights proportional to GiB, bars standing on what the earlier instances need, red overflow
exactly when the plan does not fit.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from picturekit import CASES
from libra_picture import PictureError, render_plan_svg

NS = "{http://www.w3.org/2000/svg}"
SEGMENT_KEYS = {
    "context": "cuda_context_gib",
    "weights": "weights_gib",
    "activations": "activation_gib",
    "compile": "cold_compile_gib",
    "non-torch": "non_torch_gib",
    "graphs": "cuda_graph_gib",
    "kv": "kv_cache_gib",
}
TOL_PX = 0.05


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def scale_of(root: ET.Element, total_gib: float) -> tuple[float, float]:
    """(px per GiB, chart bottom), from the card-total line and the zero tick."""
    total = next(el for el in root.iter(f"{NS}line") if "total" in classes(el))
    bottom = float(root.get("data-bottom"))
    return (bottom - float(total.get("y1"))) / total_gib, bottom


@pytest.mark.parametrize("case", list(CASES))
def test_segment_heights_are_the_plan_figures(resolved_cases, case):
    tier = resolved_cases[case]
    root = parse(render_plan_svg(tier))
    total_gib = tier["gpu"]["memory_total_mib"] / 1024
    px, bottom = scale_of(root, total_gib)
    assert px == pytest.approx(float(root.get("data-px-per-gib")), abs=1e-4)
    free = tier["gpu"]["memory_free_mib"]
    base = total_gib - (free / 1024 if free is not None else total_gib)
    for index, inst in enumerate(tier["instances"]):
        plan = inst["plan"]
        segs = [el for el in root.iter(f"{NS}rect") if "seg" in classes(el) and el.get("data-instance") == str(index)]
        drawn = {next(c[4:] for c in classes(el) if c.startswith("seg-")): el for el in segs}
        expected = {name: max(plan[key], 0.0) for name, key in SEGMENT_KEYS.items() if plan[key] > 0}
        assert set(drawn) == set(expected), case
        for name, gib in expected.items():
            assert float(drawn[name].get("height")) == pytest.approx(gib * px, abs=TOL_PX), (case, index, name)
        # stacked without gaps, starting at what is taken when the instance starts
        ordered = sorted(drawn.values(), key=lambda el: -float(el.get("y")))
        assert float(ordered[0].get("y")) + float(ordered[0].get("height")) == pytest.approx(bottom - base * px, abs=TOL_PX)
        for lower, upper in zip(ordered, ordered[1:]):
            assert float(upper.get("y")) + float(upper.get("height")) == pytest.approx(float(lower.get("y")), abs=TOL_PX)
        # KV cache sits above the budget's other parts, CUDA graphs above the budget (before vLLM 0.21)
        names = [next(c[4:] for c in classes(el) if c.startswith("seg-")) for el in ordered]
        assert names[0] == "context"
        if not plan["cuda_graphs_in_budget"] and "graphs" in names:
            assert names[-1] == "graphs"
        # the dashed budget line: context + utilization x total above the bar's base
        budget_lines = [el for el in root.iter(f"{NS}line") if "budget" in classes(el)]
        budget_gib = plan["gpu_memory_utilization"] * total_gib
        assert float(budget_lines[index].get("y1")) == pytest.approx(bottom - (base + plan["cuda_context_gib"] + budget_gib) * px, abs=0.5)
        base += plan["needs_gib"]


@pytest.mark.parametrize("case", list(CASES))
def test_red_overflow_iff_the_plan_does_not_fit(resolved_cases, case):
    tier = resolved_cases[case]
    root = parse(render_plan_svg(tier))
    overflow = [el for el in root.iter(f"{NS}rect") if "overflow" in classes(el)]
    reasons = [el.text for el in root.iter(f"{NS}text") if "reason" in classes(el)]
    assert bool(overflow) == (not tier["fits"]), case
    assert bool(reasons) == (not tier["fits"]), case
    if not tier["fits"]:
        # the planner's cause line (its "why: " reason) starts the red text, not the needs/has line
        causes = [r for r in tier["reasons"] if r.startswith("why: ")]
        assert causes, "a plan that does not fit carries its cause"
        first_words = " ".join(" ".join(reasons).split()[:8])
        assert first_words == " ".join(("Why: " + causes[0][len("why: "):]).split()[:8])


def test_overflow_height_is_what_runs_over_the_card(resolved_cases):
    tier = resolved_cases["rtx2070-dual"]
    root = parse(render_plan_svg(tier))
    total_gib = tier["gpu"]["memory_total_mib"] / 1024
    px, _bottom = scale_of(root, total_gib)
    first, second = (i["plan"] for i in tier["instances"])
    parts = ("cuda_context_gib", "weights_gib", "activation_gib", "cold_compile_gib", "non_torch_gib", "kv_cache_gib", "cuda_graph_gib")
    second_top = first["needs_gib"] + sum(second[k] for k in parts)
    over = second_top - total_gib
    assert over > 2  # the 7B's budget runs well over the 8 GB card
    rects = [el for el in root.iter(f"{NS}rect") if "overflow" in classes(el)]
    assert [el.get("data-instance") for el in rects] == ["1"]
    assert float(rects[0].get("height")) == pytest.approx(over * px, abs=0.1)


def test_missing_kv_cache_is_drawn_above_the_bar(resolved_cases):
    tier = resolved_cases["rtx2070-kv-short"]
    plan = tier["instances"][0]["plan"]
    assert plan["kv_cache_tokens"] < plan["max_model_len"]
    root = parse(render_plan_svg(tier))
    px, _ = scale_of(root, tier["gpu"]["memory_total_mib"] / 1024)
    missing = (plan["min_kv_tokens_needed"] - plan["kv_cache_tokens"]) * plan["kv_bytes_per_token"] / (1 << 30)
    rect = next(el for el in root.iter(f"{NS}rect") if "shortfall" in classes(el))
    # the budget lacks the missing tokens, up to one block's rounding
    block = 16 * plan["kv_bytes_per_token"] / (1 << 30)
    assert missing - block <= float(rect.get("height")) / px <= missing + block


def text_boxes(root: ET.Element) -> list[tuple[float, float, float, float, str]]:
    """Text extents with a generous 0.62 em per character (DejaVu Sans digits are 0.64 em at most)."""
    boxes = []
    for el in root.iter(f"{NS}text"):
        size = float(el.get("font-size"))
        width = len(el.text) * size * 0.62
        x = float(el.get("x"))
        x0 = {"middle": x - width / 2, "end": x - width}.get(el.get("text-anchor"), x)
        y = float(el.get("y"))
        boxes.append((x0, y - size * 0.8, x0 + width, y + size * 0.2, el.text))
    return boxes


@pytest.mark.parametrize("case", list(CASES))
def test_text_does_not_overlap_and_stays_inside(resolved_cases, case):
    root = parse(render_plan_svg(resolved_cases[case]))
    width, height = float(root.get("width")), float(root.get("height"))
    boxes = text_boxes(root)
    for box in boxes:
        assert 0 <= box[0] and box[2] <= width and 0 <= box[1] and box[3] <= height, box
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, (a[4], b[4])


@pytest.mark.parametrize("case", list(CASES))
def test_labels_in_gib_and_legend(resolved_cases, case):
    tier = resolved_cases[case]
    root = parse(render_plan_svg(tier))
    texts = [el.text for el in root.iter(f"{NS}text")]
    total_gib = tier["gpu"]["memory_total_mib"] / 1024
    assert any(f"{total_gib:.2f} GiB" in t and "card total" in t for t in texts)
    for inst in tier["instances"]:
        assert any(f"budget {inst['plan']['budget_gib']:.2f} GiB" in t for t in texts)
        assert any(f"weights {inst['plan']['weights_gib']:.2f}" in t for t in texts)
    for legend in ("weights", "KV cache", "CUDA graphs", "activations (profile peak)"):
        assert legend in texts
    if tier["fits"]:
        assert any(t.startswith("headroom ") for t in texts)


def test_missing_plan_key_names_the_field(resolved_cases):
    tier = dict(resolved_cases["rtx3060-single"])
    inst = dict(tier["instances"][0])
    inst["plan"] = {k: v for k, v in inst["plan"].items() if k != "kv_cache_gib"}
    tier["instances"] = [inst]
    with pytest.raises(PictureError, match=r"instances\[0\]\.plan\.kv_cache_gib is missing"):
        render_plan_svg(tier)
    with pytest.raises(PictureError, match="one resolved tier"):
        render_plan_svg([tier])
