"""The plan's words, as a new user reads them: the text of vllm_plan_table and the reasons.

A plan that does not fit says one figure for what it needs and one for what the card has, why,
and advice. Every printed item of advice is taken from the printed text (the ``-e`` it names,
the tier, the GPU preset), applied as Ansible would apply it (an extra var replaces the whole
variable) and planned again: it must fit. Applied all together they must fit too, so no two
items contradict each other. No item names an internal filter.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libra_planner.tables import plan_table
from libra_planner.tiers import gpu_from_memory, gpu_from_preset, load_tier_catalog, resolve_tier

CATALOG = load_tier_catalog()
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
GUIDE_DUAL = {"dual": {"gpu_memory_utilization": 0.85, "max_model_len": 2048, "max_num_batched_tokens": 4096}}
LONG_SINGLE = {"single": {"gpu_memory_utilization": 0.55, "max_model_len": 32768}}
# (card, tier, models, overrides)
CARDS = {
    "gtx1650": gpu_from_preset("gtx1650"),
    "rtx2070": gpu_from_preset("rtx2070"),
    "rtx3060": gpu_from_preset("rtx3060"),
    "10GiB-8.6": gpu_from_memory(10240, "8.6"),
    "t4": gpu_from_preset("t4"),
    "a100-80gb": gpu_from_preset("a100-80gb"),
}
CASES = [
    (card, tier, models, overrides)
    for card in CARDS
    for tier, models, overrides in (
        ("dual", {}, {}),
        ("single", {}, {}),
        ("int2", {}, {}),
        ("single", {"small": LLAMA}, {}),
        ("dual", {}, GUIDE_DUAL),
        ("single", {}, LONG_SINGLE),
        ("auto", {}, {}),
    )
]
# Filters of filter_plugins/vllm.py: internals, never something an operator sets.
FILTER_NAMES = (
    "vllm_memory_plan", "vllm_multi_plan", "vllm_solve_utilization", "vllm_tier_resolve", "vllm_validate",
    "vllm_gpu_preset", "vllm_plan_table", "vllm_max_table", "vllm_gpu_for_plan", "vllm_select_gpu",
)


def _resolve(tier, gpu, models, overrides):
    return resolve_tier(copy.deepcopy(CATALOG), tier, gpu, copy.deepcopy(models), copy.deepcopy(overrides))


def _advice_lines(text: list[str]) -> list[str]:
    """The printed advice: the "- " lines after "any one of these fits"."""
    out, inside = [], False
    for line in text:
        if line.strip().startswith("any one of these fits"):
            inside = True
            continue
        if inside and line.startswith("   - "):
            out.append(line[5:])
        elif inside:
            inside = False
    return out


def _apply(line: str, tier: str, gpu: dict, models: dict, overrides: dict):
    """The setting one printed line names, applied as the operator would: (tier, gpu, models, overrides)."""
    models, overrides = copy.deepcopy(models), copy.deepcopy(overrides)
    applied = 0
    for blob in re.findall(r"-e '(\{.*?\})'", line):
        extra = json.loads(blob)
        # ansible extra vars replace an inventory dict (hash_behaviour replace, the default)
        models = extra.get("vllm_models", models)
        overrides = extra.get("vllm_tier_overrides", overrides)
        applied += 1
    if m := re.search(r"-e tier=(\w+)", line):
        tier = m.group(1)
        applied += 1
    if m := re.search(r"gpu_facts_preset=([\w-]+)", line):
        gpu = gpu_from_preset(m.group(1))
        applied += 1
    assert applied, f"advice names no setting an operator makes: {line}"
    return tier, gpu, models, overrides


@pytest.fixture(scope="module")
def planned():
    out = {}
    for card, tier, models, overrides in CASES:
        resolved = _resolve(tier, CARDS[card], models, overrides)
        out[(card, tier, json.dumps(models), json.dumps(overrides))] = (resolved, plan_table(resolved))
    return out


def _cases(planned):
    for (card, tier, models, overrides), (resolved, text) in planned.items():
        yield card, tier, json.loads(models), json.loads(overrides), resolved, text


def test_some_cases_do_not_fit_and_have_advice(planned):
    misfits = [r for *_, r, _ in _cases(planned) if not r["fits"]]
    assert len(misfits) >= 10
    assert sum(len(r["advice"]) for r in misfits) >= 15


def test_every_printed_suggestion_fits_when_applied(planned):
    checked = 0
    for card, tier, models, overrides, resolved, text in _cases(planned):
        base_tier = resolved["name"]
        for line in _advice_lines(text):
            t, g, m, o = _apply(line, base_tier, CARDS[card], models, overrides)
            again = _resolve(t, g, m, o)
            assert again["fits"], (card, tier, line, again["reasons"])
            # the figure the advice quotes is the re-plan's own
            quoted = re.search(r"needs ([0-9.]+) of ([0-9.]+) GiB$", line)
            assert quoted, line
            assert float(quoted.group(1)) == pytest.approx(again["total_needs_gib"], abs=0.006)
            checked += 1
    assert checked >= 15


def test_all_suggestions_applied_together_still_fit(planned):
    for card, tier, models, overrides, resolved, text in _cases(planned):
        lines = _advice_lines(text)
        if len(lines) < 2:
            continue
        t, g, m, o = resolved["name"], CARDS[card], models, overrides
        for line in lines:
            t, g, m, o = _apply(line, t, g, m, o)
        assert _resolve(t, g, m, o)["fits"], (card, tier, lines)


def test_one_needs_figure_and_one_has_figure(planned):
    for card, tier, _models, _overrides, resolved, text in _cases(planned):
        advice = set(_advice_lines(text))
        own = [line for line in text if line[5:] not in advice]
        needs = {float(x) for line in own for x in re.findall(r"needs ([0-9.]+) GiB", line)}
        assert len(needs) == 1, (card, tier, needs, own)
        assert needs == {round(resolved["needs_gib"], 2)}
        has = {float(x) for line in own for x in re.findall(r"has ([0-9.]+) GiB", line)}
        assert has == {round(resolved["gives_gib"], 2)}, (card, tier, own)
        if not resolved["fits"]:
            # the reasons (preflight's failure message) say the same figures
            said = {float(x) for r in resolved["reasons"] if r not in advice and not r.startswith(("tiers that fit", "a bigger card"))
                    for x in re.findall(r"needs ([0-9.]+) GiB", r)}
            assert said == needs, (card, tier, resolved["reasons"])


def test_no_unverified_fix_and_no_internal_name(planned):
    for card, tier, _models, _overrides, resolved, text in _cases(planned):
        words = "\n".join(text + resolved["reasons"])
        for name in FILTER_NAMES:
            assert name not in words, (card, tier, name)
        # the planner's unverified hints ("lower ... to <= 0.51", "at most 0.93") stay in details
        assert "<= " not in words and "at most" not in words, (card, tier, words)
        assert "even the smallest utilizations" not in words


def test_needs_exceeds_has_when_memory_is_the_cause(planned):
    for card, tier, _models, _overrides, resolved, _text in _cases(planned):
        if resolved["fits"]:
            assert resolved["needs_gib"] == pytest.approx(resolved["total_needs_gib"])
            assert resolved["needs_gib"] <= resolved["gives_gib"]
        elif any("cannot start" in r or "nothing is left" in r for r in resolved["reasons"] if r.startswith("why: ")):
            assert resolved["needs_gib"] > resolved["gives_gib"], (card, tier, resolved["reasons"])


def test_columns_name_both_concurrencies():
    resolved = _resolve("single", CARDS["a100-80gb"], {}, {})
    text = plan_table(resolved)
    header = next(line for line in text if line.startswith("instance"))
    assert "activ " not in header and "conc" not in header
    assert "full-length" in header and "max_num_seqs" in header
    row = next(line for line in text if line.startswith("small"))
    cells = row.split()
    inst = resolved["instances"][0]
    # full-length requests the KV cache holds (tokens / max_model_len) and the server's max_num_seqs
    assert float(cells[9]) == pytest.approx(inst["plan"]["kv_cache_tokens"] / inst["max_model_len"], abs=0.006)
    assert int(cells[10]) == inst["max_num_seqs"]
    # the cold compile's peak has its own column: the row adds up to the budget and the context
    assert float(cells[5]) == pytest.approx(inst["plan"]["cold_compile_gib"], abs=0.006)
    assert any(f"max_model_len\n" in line or f"({inst['max_model_len']} tokens)" in line for line in text)


def test_the_issues_two_examples():
    rtx2070 = CARDS["rtx2070"]
    dual = _resolve("dual", rtx2070, {}, {})
    llama = _resolve("single", rtx2070, {"small": LLAMA}, {})
    for resolved in (dual, llama):
        assert not resolved["fits"]
        text = "\n".join(plan_table(resolved))
        assert "lower gpu_memory_utilization" not in text
        assert "vllm_solve_utilization" not in text
        assert len([r for r in resolved["reasons"] if r.startswith("why: ")]) == 1
        assert resolved["advice"], resolved["reasons"]
        # the planner's own wording is kept for whoever digs
        assert resolved["details"]


def test_max_table_names_its_columns_with_units():
    from libra_planner.tables import max_table
    from libra_planner.tiers import max_by_preset

    rows = max_by_preset()
    text = max_table(rows)
    assert text[0].split() == ["preset", "memory", "compute", "model", "util", "weights", "KV-cache", "KV-tokens", "verdict"]
    assert text[1].split() == ["GiB", "capability", "share", "GiB", "GiB", "tokens"]
    for line, resolved in zip(text[2:], rows):
        cells = line.split()
        assert cells[0] == resolved["preset"]
        assert float(cells[1]) == pytest.approx(resolved["gpu"]["memory_total_mib"] / 1024, abs=0.05)
        assert int(cells[7]) == resolved["instances"][0]["plan"]["kv_cache_tokens"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mib=st.integers(3 * 1024, 32 * 1024), cap=st.sampled_from(["7.5", "8.0", "8.6", "8.9"]),
       tier=st.sampled_from(["dual", "single", "int2"]), context=st.sampled_from([None, 8192, 32768]))
def test_any_card_every_advice_fits_and_needs_is_one_figure(mib, cap, tier, context):
    gpu = gpu_from_memory(mib, cap)
    overrides = {tier: {"max_model_len": context}} if context else {}
    resolved = _resolve(tier, gpu, {}, overrides)
    assert resolved["needs_gib"] is not None
    if resolved["fits"]:
        assert resolved["needs_gib"] <= resolved["gives_gib"]
        return
    for item in resolved["advice"]:
        knobs = item["set"]
        again = _resolve(knobs.get("tier", tier),
                         gpu_from_preset(knobs["gpu_facts_preset"]) if "gpu_facts_preset" in knobs else gpu,
                         knobs.get("vllm_models", {}), knobs.get("vllm_tier_overrides", overrides))
        assert again["fits"], (item["text"], again["reasons"])
        assert again["needs_gib"] == pytest.approx(item["needs_gib"])
