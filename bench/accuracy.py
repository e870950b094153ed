#!/usr/bin/env python3
"""Memory-planner accuracy against real vLLM startup logs.

Runs ``plan_instance`` over every usable row of ``vllm_startup_observations.csv`` and prints,
per row, the predicted and observed weights and KV cache, the KV error as a share of the
instance's budget (utilization x total), and the fits verdict. Rows the planner does not model
are listed with the reason they are skipped. Exits non-zero when a target is missed:

    weights: median error <= 1 %, worst <= 2 %  (of the observed weights)
    KV cache: median error <= 2 %, worst <= 4 % of the budget
    fits verdict right on every row where it can be judged
for all rows together and for the rows of each release's physics (the catalog release that
planned them: rows of releases the catalog does not list are planned with their era's facts).

Rules for rows from other engines and versions (the planner targets the pinned V1 engine):
  * V0 rows are planned with ``engine: v0``: V0 profiles ``max_num_batched_tokens`` tokens,
    which is max(max_model_len, 2048) without chunked prefill, and samples with V0's sampler.
    KV = budget - weights - peak activation - non-torch memory holds for both engines.
    CUDA graphs sit outside the budget before v0.21; from v0.21 vLLM subtracts its CUDA-graph
    estimate (logged inside "peak activation" on current releases; rows 44-46).
  * Weights do not depend on the engine or version: every row with a logged
    ``Model loading took`` and a modelled architecture is compared.
  * The V1 startup check (free >= utilization x total) runs before any model code, so a row
    that failed it is judged on the verdict whatever its model or parallelism.

Usage: bench/accuracy.py [--data PATH]   (default: data/vllm_startup_observations.csv in the repository)
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "lib"))

from libra_planner import PlannerError, plan_instance  # noqa: E402  (path set just above)
from libra_planner.memory import GIB, MIB  # noqa: E402

DEFAULT_DATA = os.path.join(REPO_ROOT, "data", "vllm_startup_observations.csv")

TARGETS = {"weights_median": 1.0, "weights_worst": 2.0, "kv_median": 2.0, "kv_worst": 4.0}

# Row model name (prefix, case-insensitive) -> catalog id with the same architecture.
# Qwen2.5-0.5B (base) has the -Instruct architecture (same config.json fields);
# DeepSeek-R1-Distill-Llama-8B is in the catalog itself.
MODEL_MAP = [
    ("unsloth/meta-llama-3.1-8b-instruct-bnb-4bit", "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit"),
    ("qwen/qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct"),
    ("qwen/qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct"),
    ("qwen/qwen2.5-3b-instruct-awq", "Qwen/Qwen2.5-3B-Instruct-AWQ"),
    ("qwen/qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct"),
    # AWQ checkpoints before their 16-bit names, which are prefixes of theirs
    ("qwen/qwen2.5-7b-instruct-awq", "Qwen/Qwen2.5-7B-Instruct-AWQ"),
    ("qwen/qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct"),
    ("deepseek-ai/deepseek-r1-distill-llama-8b", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"),
    ("meta-llama/llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ("google/gemma-3-4b-it", "google/gemma-3-4b-it"),
    ("qwen/qwen3-8b-awq", "Qwen/Qwen3-8B-AWQ"),
    ("qwen/qwen3-8b", "Qwen/Qwen3-8B"),
    ("qwen/qwen3-0.6b", "Qwen/Qwen3-0.6B"),
]

# Compute capability by GPU name (NVIDIA's CUDA GPU list, developer.nvidia.com/cuda-gpus).
# It decides dtype (bf16 needs >= 8.0) and quantized kernels; unnamed GPUs that logged
# bfloat16 or FlashAttention are >= 8.0.
CC_BY_NAME = [("t4", "7.5"), ("2070", "7.5"), ("turing", "7.5"), ("3090", "8.6"), ("4050", "8.9"), ("4060", "8.9"), ("4090", "8.9"), ("l4", "8.9"),
              ("a100", "8.0"), ("h100", "9.0")]


def first_number(text: str) -> float | None:
    match = re.search(r"-?\d+(?:\.\d+)?", (text or "").replace(",", ""))
    return float(match.group()) if match else None


# Rows whose model is not a catalog entry, given as the config.json the row's model has.
# Row 33: llava-hf/llava-v1.6-mistral-7b-hf config.json (LlavaNextForConditionalGeneration:
# Mistral-7B text model with a 32064-token vocabulary, CLIP ViT-L/14 at 336 px).
# Row 11: mistralai/Mistral-Small-3.2-24B-Instruct-2506 config.json (Mistral3ForConditionalGeneration:
# the row's notes confirm 40 layers x 8 KV heads x 128; Pixtral vision tower 24 x 1024, patch 14, 1540 px).
# Row 29: Qwen2.5-7B-Instruct quantized in flight to bitsandbytes 4-bit (the log).
_QWEN25_7B = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
              "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16", "max_position_embeddings": 32768}
MODEL_CONFIGS = {
    "33": {"model_type": "llava_next", "torch_dtype": "float16",
           "text_config": {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32064,
                           "max_position_embeddings": 32768},
           "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "patch_size": 14,
                             "image_size": 336}},
    "11": {"model_type": "mistral3", "torch_dtype": "bfloat16",
           "text_config": {"model_type": "mistral", "hidden_size": 5120, "intermediate_size": 32768, "num_hidden_layers": 40,
                           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 131072,
                           "max_position_embeddings": 131072},
           "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "patch_size": 14,
                             "image_size": 1540}},
    "29": dict(_QWEN25_7B, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True,
                                                "bnb_4bit_use_double_quant": True}),
}


def skip_reason(row: dict) -> str | None:
    """Why the planner cannot model this row at all (None: it can)."""
    model = row["model"].lower()
    tp = first_number(row["tensor_parallel"]) or 1
    if tp > 1:
        return f"tensor_parallel={int(tp)}: per-GPU sharding and NCCL buffers are not modelled"
    if "mxfp4" in row["quantization"].lower():
        return "MXFP4 (gpt-oss) quantization is not sized by the planner"
    if model.startswith("deepseek-ai/deepseek-r1") and "distill" not in model:
        return "multi-head latent attention (DeepSeek-V3 architecture) is not sized by the planner"
    if "unsloth-bnb-4bit" in model:
        return ("Unsloth dynamic 4-bit: the modules it keeps in 16 bits (llm_int8_skip_modules) are not in the row, "
                "so its weights cannot be sized")
    if "development build" in row["vllm_version"]:
        return "a development build between releases: no release's physics to plan it with (weights compared below)"
    return None


def catalog_id(row: dict) -> str | None:
    """The catalog model that plans the row: its own id when catalog/models.yml has it (any case),
    else the catalog model of the same architecture (MODEL_MAP)."""
    if row["row_id"] in MODEL_CONFIGS:
        return "model_config"
    from libra_planner.models import load_model_catalog  # noqa: PLC0415

    model = row["model"].lower()
    named = model.split()[0] if model.split() else model
    exact = {name.lower(): name for name in load_model_catalog()}
    if named in exact:
        return exact[named]
    for prefix, target in MODEL_MAP:
        if model.startswith(prefix):
            return target
    return None


def gpu_total_gib(row: dict) -> float | None:
    text = row["gpu_total_mem_reported_gib"]
    if text:
        value = first_number(text)
        return value / 1024 if "mib" in text.lower() else value
    mib = re.search(r"(\d+)\s*MiB", row["gpu_identification"])
    return int(mib.group(1)) / 1024 if mib else None


def compute_capability(row: dict) -> str:
    name = (row["gpu"] + " " + row["gpu_identification"]).lower()
    for key, cc in CC_BY_NAME:
        if key in name:
            return cc
    return "8.0"


def row_release(row: dict) -> tuple[str, str]:
    """(the vLLM release the row names, or "unstated"; the vllm_version the planner is given).

    The planner plans a release catalog/engine.yml does not list with the facts of the listed
    release of its era (``eras``: CUDA graphs outside the budget before v0.21, inside from it).
    Rows that do not state their version come from 2024-2025 logs (V0, or V1 before 0.21 by
    their log format) and are given 0.11.0.
    """
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", row["vllm_version"])
    if not match or "not stated" in row["vllm_version"].lower() and not row["vllm_version"].lower().startswith("~"):
        return "unstated", "0.11.0"
    major, minor, patch = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    return f"{major}.{minor}", f"{major}.{minor}.{patch}"


# "(cold torch.compile cache)", "torch.compile cache warm (...)": what the row's source shows.
_COMPILE_CACHE = re.compile(r"\b(cold|warm)\s+torch\.compile\s+cache|torch\.compile\s+cache\s+(cold|warm)", re.I)


def compile_cache(row: dict) -> str | None:
    """The torch.compile cache the row's start found (cold or warm), or None when its source does
    not show it; the peak-activation column first, then the outcome and the notes."""
    for field in ("obs_peak_activation_gib", "outcome", "notes"):
        match = _COMPILE_CACHE.search(row.get(field) or "")
        if match:
            return (match.group(1) or match.group(2)).lower()
    return None


# "V1 model runner" / "Using V2 Model Runner": the runner the row's log shows, when it says.
_MODEL_RUNNER = re.compile(r"\b(V1|V2) model runner", re.I)


def model_runner(row: dict) -> str | None:
    """The model runner the row's log names (v1 or v2), or None: the release's default applies."""
    match = _MODEL_RUNNER.search(row.get("notes") or "")
    return match.group(1).lower() if match else None


def instance_for(row: dict, model: str) -> dict:
    engine = "v0" if row["engine"].strip().upper().startswith("V0") else "v1"
    inst: dict = {"engine": engine, "vllm_version": row_release(row)[1]}
    if model == "model_config":
        inst["model_config"] = MODEL_CONFIGS[row["row_id"]]
        inst["model"] = row["model"].split(" ")[0]
    else:
        inst["model"] = model
    # The vllm/vllm-openai image ships FlashInfer and the V1 engine samples with it on compute
    # capability >= 8.0 (the llm-d rows ran that image, rows 4 and 5 say so).
    if engine == "v1" and "llm-d" in row["source"] and compute_capability(row) >= "8.0":
        inst["sampler"] = "flashinfer"
    dtype = row["dtype"].lower()
    inst["dtype"] = "bfloat16" if dtype.startswith("bfloat16") else "float16" if dtype.startswith("float16") else "auto"
    for field in ("gpu_memory_utilization", "max_model_len", "max_num_seqs", "max_num_batched_tokens"):
        value = first_number(row[field])
        if value is not None:
            inst[field] = value if field == "gpu_memory_utilization" else int(value)
    inst["enforce_eager"] = row["enforce_eager"].strip().lower().startswith("true")
    # unstated: the planner's default, a cold start
    cache = compile_cache(row)
    if cache:
        inst["torch_compile_cache"] = cache
    runner = model_runner(row)
    if runner:
        inst["model_runner"] = runner
    return inst


def _bucket(by_release: dict, row: dict) -> dict:
    """The figures of the row's stated release, keyed by what planned it (a listed release or its
    era), and grouped by the listed release whose facts the era starts from."""
    from libra_planner.engine import release_facts, resolve_version  # noqa: PLC0415

    stated, asked = row_release(row)
    planned = release_facts(asked, "bench")["vllm_facts_from"]
    return by_release.setdefault(f"{stated} -> {planned}", {"facts": resolve_version(asked, "bench"), "weights": [], "kv": [],
                                                              "verdict": []})


def _catalog_releases() -> list[str]:
    from libra_planner.engine import releases  # noqa: PLC0415

    return list(releases())


def pct(a: float, b: float) -> float:
    return 100.0 * a / b


def run(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    weight_errs: list[float] = []
    kv_errs: list[float] = []
    verdicts: list[bool] = []
    by_release: dict[str, dict[str, list]] = {}
    skipped: list[str] = []
    print(f"{'row':>4}  {'model':<34} {'weights pred/obs GiB':>22} {'err%':>6}  {'KV pred/obs GiB':>17} {'%budget':>8}  verdict pred/obs")
    for row in rows:
        rid = row["row_id"]
        # "ok ..." or "first instance ok; second ... failed" (the row's figures are the first's)
        ok = re.match(r"(first instance )?ok\b", row["outcome"].strip().lower()) is not None
        reason = skip_reason(row)
        startup_fail = "less than desired gpu memory utilization" in row["outcome"].lower()
        if reason and startup_fail:
            # Judge the V1 startup check alone: it runs before any model code.
            free = re.search(r"\((\d+(?:\.\d+)?)/(\d+(?:\.\d+)?) GiB\)", row["outcome"])
            if free:
                gpu = {"memory_total_mib": float(free.group(2)) * 1024, "memory_free_mib": float(free.group(1)) * 1024,
                       "compute_capability": compute_capability(row)}
                inst = instance_for(row, catalog_id(row) or "Qwen/Qwen2.5-0.5B-Instruct")
                plan = plan_instance(inst, gpu)
                said = any("vLLM starts only when free memory" in r for r in plan["reasons"])
                verdicts.append(said and not plan["fits"])
                print(f"{rid:>4}  {row['model'][:34]:<34} {'-':>22} {'-':>6}  {'-':>17} {'-':>8}  "
                      f"{'fits' if plan['fits'] else 'no-fit(startup check)' if said else 'no-fit'}/no-fit  [startup-check rule]")
                continue
        if reason:
            extra = ""
            model = catalog_id(row)
            w_obs = first_number(row["obs_model_loading_gib"])
            if model and w_obs and "development build" in reason:
                gpu = {"memory_total_mib": (gpu_total_gib(row) or 80.0) * 1024, "compute_capability": compute_capability(row)}
                w_pred = plan_instance(dict(instance_for(row, model), vllm_version="0.11.0", max_model_len=2048), gpu)["weights_gib"]
                extra = f" [weights {w_pred:.3f} predicted vs {w_obs:.3f} logged: {pct(w_pred - w_obs, w_obs):+.2f} %]"
            skipped.append(f"{rid:>4}  {row['model'][:60]}: {reason}{extra}")
            continue
        model = catalog_id(row)
        if model is None:
            skipped.append(f"{rid:>4}  {row['model'][:60]}: architecture not in the catalog")
            continue
        inst = instance_for(row, model)
        total = gpu_total_gib(row)
        gpu = {"memory_total_mib": (total or 80.0) * 1024, "compute_capability": compute_capability(row)}
        if "gpu_memory_utilization" not in inst:
            inst["gpu_memory_utilization"] = 0.9
        if "max_model_len" not in inst:
            inst["max_model_len"] = 2048
        try:
            plan = plan_instance(inst, gpu)
        except PlannerError as err:
            skipped.append(f"{rid:>4}  {row['model'][:60]}: planner refused it: {err}")
            continue
        w_obs = first_number(row["obs_model_loading_gib"])
        w_txt, w_err_txt = "-", "-"
        if w_obs:
            err = pct(plan["weights_gib"] - w_obs, w_obs)
            weight_errs.append(abs(err))
            _bucket(by_release, row)["weights"].append(abs(err))
            w_txt, w_err_txt = f"{plan['weights_gib']:.3f}/{w_obs:.3f}", f"{err:+.2f}"
        util_known = first_number(row["gpu_memory_utilization"]) is not None
        kv_obs = first_number(row["obs_kv_cache_gib"])
        tokens_obs = first_number(row["obs_kv_tokens"])
        if kv_obs is None and tokens_obs is not None:
            kv_obs = tokens_obs * plan["kv_bytes_per_token"] / GIB
        missing = "GPU total" if total is None else "utilization" if not util_known else "KV figure"
        kv_txt, kv_err_txt, verdict_txt = "-", "-", f"n/a ({missing} not logged)"
        if total is not None and util_known and kv_obs is not None:
            # A row whose source does not show the torch.compile cache could have started either
            # way: its KV cache is judged against the range from a cold start (the plan) to a warm one.
            unstated = plan["cold_compile_bytes"] and "torch_compile_cache" not in inst
            warm = plan_instance(dict(inst, torch_compile_cache="warm"), gpu) if unstated else None
            budget = plan["budget_bytes"] / GIB
            low = plan["kv_cache_bytes"] / GIB
            high = warm["kv_cache_bytes"] / GIB if warm else low
            err = pct(min(max(kv_obs, low), high) - kv_obs, budget)
            kv_errs.append(abs(err))
            _bucket(by_release, row)["kv"].append(abs(err))
            kv_txt = f"{low:.2f}/{kv_obs:.2f}" if not warm else f"{low:.2f}..{high:.2f}/{kv_obs:.2f}"
            kv_err_txt = f"{err:+.2f}"
            verdict_txt = f"{'fits' if plan['fits'] else 'no-fit'}/{'fits' if ok else 'no-fit'}"
            if warm and warm["fits"] != plan["fits"] and ok:
                # vLLM started: a warm cache can do that where a cold one cannot; left unjudged
                verdict_txt += " (cold no-fit, warm fits: depends on the cache)"
            else:
                verdicts.append(plan["fits"] == ok)
                _bucket(by_release, row)["verdict"].append(plan["fits"] == ok)
        elif kv_obs is not None:
            kv_txt = f"-/{kv_obs:.2f}"
        print(f"{rid:>4}  {row['model'][:34]:<34} {w_txt:>22} {w_err_txt:>6}  {kv_txt:>17} {kv_err_txt:>8}  "
              f"{verdict_txt}  [{inst['engine']}]")
    print("\nskipped rows:")
    for line in skipped:
        print(line)

    failures: list[str] = []

    def summary(name: str, errs: list[float], median_target: float, worst_target: float, unit: str) -> None:
        if not errs:
            failures.append(f"{name}: no usable rows")
            print(f"{name}: no usable rows")
            return
        median, worst = statistics.median(errs), max(errs)
        met = median <= median_target and worst <= worst_target
        if not met:
            failures.append(name)
        print(f"{name}: {len(errs)} rows, median |error| {median:.2f} % (target <= {median_target}), "
              f"worst {worst:.2f} % (target <= {worst_target}) {unit}: {'met' if met else 'MISSED'}")

    print("\nper vLLM release (the row's stated release -> the catalog release whose physics planned it):")
    for key in sorted(by_release):
        got = by_release[key]
        w, k, v = got["weights"], got["kv"], got["verdict"]
        print(f"  {key:<22} weights {len(w):>2} rows"
              + (f" median {statistics.median(w):.2f} % worst {max(w):.2f} %" if w else "")
              + f"; KV {len(k):>2} rows" + (f" median {statistics.median(k):.2f} % worst {max(k):.2f} %" if k else "")
              + f"; verdict {sum(v)}/{len(v)}")
    from libra_planner.engine import resolve_version  # noqa: PLC0415

    planned_with = {resolve_version(row_release(r)[1], "bench") for r in rows}  # the listed releases
    for release in sorted(set(_catalog_releases()) - planned_with):
        print(f"  (no calibration row is planned with vLLM {release}'s physics)")
    # The targets hold for each release's physics (the catalog release that planned the rows),
    # and for all rows together.
    for facts in sorted({got["facts"] for got in by_release.values()}):
        print(f"\nrows planned with vLLM {facts}'s physics:")
        got = [g for g in by_release.values() if g["facts"] == facts]
        for name, key, unit in (("weights", "weights", "of observed weights"), ("kv cache", "kv", "of the budget")):
            errs = [e for g in got for e in g[key]]
            if errs:
                summary(f"{facts} {name}", errs, TARGETS[f"{key}_median"], TARGETS[f"{key}_worst"], unit)
            else:
                print(f"{facts} {name}: no row logs it")
        verdict_rows = [v for g in got for v in g["verdict"]]
        if verdict_rows and not all(verdict_rows):
            failures.append(f"{facts} verdict")
        print(f"{facts} fits verdict: {sum(verdict_rows)}/{len(verdict_rows)} right")
    print("\nall rows:")
    summary("weights", weight_errs, TARGETS["weights_median"], TARGETS["weights_worst"], "of observed weights")
    summary("kv cache", kv_errs, TARGETS["kv_median"], TARGETS["kv_worst"], "of the budget")
    right = sum(verdicts)
    verdict_met = bool(verdicts) and right == len(verdicts)
    if not verdict_met:
        failures.append("verdict")
    print(f"fits verdict: {right}/{len(verdicts)} right: {'met' if verdict_met else 'MISSED'}")
    if failures:
        print(f"targets missed: {', '.join(failures)}")
        return 1
    print("all targets met")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="observations CSV (default: %(default)s)")
    args = parser.parse_args()
    if not os.path.exists(args.data):
        print(f"data file not found: {args.data}", file=sys.stderr)
        return 2
    return run(args.data)


if __name__ == "__main__":
    sys.exit(main())
