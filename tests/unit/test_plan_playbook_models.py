"""`make plan` as a new user (issue 8, "done when"): a Qwen3 AWQ model, an FP8 model, a
bitsandbytes model and a Gemma 3 multimodal model, with and without max_model_len, on an 8 GB
RTX 2070 (compute capability 7.5) and a 24 GB RTX 4090, through playbooks/plan.yml.

One ansible-playbook run over local hosts, one per (model, card, context); each host's verdict
must be the one the planner gives in-process, and an unset max_model_len must be planned at
the model's own maximum. The bitsandbytes model runs on vLLM 0.11.0 (the pinned release has no
bitsandbytes support, which the planner says when asked for it).
"""

from __future__ import annotations

import re

import pytest

from libra_planner import PlannerError
from libra_planner.tiers import gpu_from_preset, resolve_tier

from test_plan_playbook import PLAYBOOK, local_hosts, run_playbook  # tests/unit is on sys.path (pytest prepend)

MODELS = {
    "qwen3awq": ("Qwen/Qwen3-8B-AWQ", None, 40960),
    "fp8": ("Qwen/Qwen3-8B-FP8", None, 40960),
    "bnb": ("unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit", "0.11.0", 131072),
    "gemma": ("google/gemma-3-4b-it", None, 131072),
}
CARDS = ("rtx2070", "rtx4090")
CONTEXTS = {"len4096": 4096, "unset": None}


def _vars(key: str, context: int | None) -> dict:
    model, version, _ = MODELS[key]
    override = {"max_model_len": context}
    if version:
        override["vllm_version"] = version
    return {"vllm_models": {"small": model}, "vllm_tier_overrides": {"single": override}}


def _cases():
    for key in MODELS:
        for card in CARDS:
            for ctx_name, context in CONTEXTS.items():
                yield f"{key}-{card}-{ctx_name}", key, card, context


@pytest.fixture(scope="module")
def plan_output(tmp_path_factory):
    if PLAYBOOK is None:
        pytest.skip("ansible-playbook is not installed")
    hosts = {name: dict(_vars(key, context), gpu_facts_preset=card) for name, key, card, context in _cases()}
    result = run_playbook(["playbooks/plan.yml", "-e", "tier=single"], tmp_path_factory.mktemp("models"), local_hosts(hosts))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize(("host", "key", "card", "context"), list(_cases()), ids=[c[0] for c in _cases()])
def test_new_user_models_plan(plan_output, host, key, card, context):
    model, _, model_max = MODELS[key]
    verdict = re.search(rf"ok: \[{re.escape(host)}\] => \n\s+msg: 'verdicts: single=(fits|does-not-fit)'", plan_output)
    assert verdict, f"no verdict for {host}"
    variables = _vars(key, context)
    expected = resolve_tier(None, "single", gpu_from_preset(card), variables["vllm_models"], variables["vllm_tier_overrides"], suggest=False)
    assert verdict.group(1) == ("fits" if expected["fits"] else "does-not-fit")
    assert model[:38] in plan_output
    inst = expected["instances"][0]
    assert inst["max_model_len"] == (context or model_max)
    assert inst["plan"]["max_model_len_source"].startswith("instance" if context else "model")


def test_a_24gb_card_runs_each_model_at_4096():
    for key, (model, version, _) in MODELS.items():
        resolved = resolve_tier(None, "single", gpu_from_preset("rtx4090"), *_vars(key, 4096).values(), suggest=False)
        assert resolved["fits"], (model, resolved["reasons"])


def test_bitsandbytes_on_the_pinned_release_says_why_not():
    with pytest.raises(PlannerError, match="no bitsandbytes support.*pin vllm_version 0.11.0"):
        resolve_tier(None, "single", gpu_from_preset("rtx4090"), {"small": MODELS["bnb"][0]}, {}, suggest=False)
