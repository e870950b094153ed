"""The accuracy benchmark (bench/accuracy.py) on the repository's calibration rows (data/): the targets per
release's physics, the verdict never "fits" where vLLM failed, and a missed target turns its exit code non-zero."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO_ROOT, "data", "vllm_startup_observations.csv")


@pytest.fixture(scope="module")
def bench_out() -> str:
    """What bench/accuracy.py prints over the repository's rows (run once for the module)."""
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "bench", "accuracy.py"), "--data", DATA],
        capture_output=True, text=True, timeout=300, check=False,
    ).stdout


def _summary_lines(stdout: str, release: str) -> list[str]:
    """The benchmark's target lines for the rows planned with one release's physics."""
    return [line for line in stdout.splitlines() if line.startswith(f"{release} ")]


def test_accuracy_benchmark_meets_targets_for_the_0_11_physics(bench_out):
    out = bench_out
    lines = _summary_lines(out, "0.11.0")
    assert len(lines) == 3, out
    assert all(line.endswith(": met") for line in lines if "verdict" not in line), lines
    verdict = next(line for line in lines if "verdict" in line)
    right, total = verdict.rsplit(" ", 2)[-2].split("/")
    assert right == total and int(total) > 0, verdict


def test_no_row_is_planned_to_fit_where_vllm_failed(bench_out):
    """Whatever the KV accuracy, the verdict never says "fits" on a row whose start failed."""
    out = bench_out
    rows = [line for line in out.splitlines() if line[:4].strip().isdigit()]
    judged = [line for line in rows if "fits/fits" in line or "fit/no-fit" in line]
    assert len(judged) >= 20, out
    # "<predicted>/<observed>": fits/no-fit would be the unsafe verdict
    assert not [line for line in judged if " fits/no-fit" in line], out
    assert "fits verdict: " in out and "right: met" in out, out


def test_accuracy_benchmark_meets_targets_for_the_current_physics(bench_out):
    """The rows of 0.20 on (planned with 0.32.0's facts and its eras' own): cold and warm
    torch.compile caches, Model Runner V2 without and with its CUDA-graph estimate."""
    lines = [line for line in _summary_lines(bench_out, "0.32.0") if "verdict" not in line]
    assert len(lines) == 2 and all(line.endswith(": met") for line in lines), lines
    verdict = next(line for line in _summary_lines(bench_out, "0.32.0") if "verdict" in line)
    right, total = verdict.rsplit(" ", 2)[-2].split("/")
    assert right == total and int(total) >= 10, verdict


def test_rows_are_planned_with_their_eras_facts(bench_out):
    """A stated release the catalog does not list is planned, and reported, with its era."""
    eras = {line.split("->")[0].strip(): line.split("->")[1].split()[:2] for line in bench_out.splitlines()
            if line.startswith("  0.") and "->" in line}
    assert eras["0.27"] == ["era", "0.26.0"], eras  # Model Runner V2, no CUDA-graph estimate
    assert eras["0.28"] == ["era", "0.28.0"], eras
    assert eras["0.19"] == ["era", "0.18.0"], eras
    assert eras["0.29"][0] == "0.32.0", eras


def test_a_row_without_its_compile_cache_is_judged_on_the_cold_to_warm_range(bench_out):
    """Row 50 does not say whether its torch.compile cache was warm: its KV cache is printed as
    the range from a cold start to a warm one; row 47 says cold and gets one figure."""
    row = {line.split()[0]: line for line in bench_out.splitlines() if line[:4].strip().isdigit()}
    low, rest = row["50"].split("..", 1)
    high = rest.split("/", 1)[0]
    # the two ends differ by the era's cold-compile peak (catalog/engine.yml cold_compile_gib 0.98)
    assert abs(float(high) - float(low.split()[-1]) - 0.98) < 0.011, row["50"]
    assert ".." not in row["47"].split("fits")[0], row["47"]


def test_accuracy_benchmark_fails_on_a_missed_target(tmp_path):
    """A row whose logged KV cache the planner cannot match must turn the exit code non-zero."""
    header = (
        "row_id,model,quantization,dtype,gpu,gpu_total_mem_reported_gib,gpu_identification,vllm_version,engine,"
        "attention_backend,gpu_memory_utilization,max_model_len,max_num_seqs,max_num_batched_tokens,chunked_prefill,"
        "enforce_eager,tensor_parallel,block_size,obs_model_loading_gib,obs_peak_activation_gib,obs_non_torch_gib,"
        "obs_cudagraph_gib,obs_kv_cache_gib,obs_kv_blocks,obs_kv_tokens,obs_max_concurrency,outcome,source,source_type,notes"
    )
    # row 22's settings with a made-up KV cache twice the logged one
    row = ("1,Qwen/Qwen2.5-7B-Instruct,none,bfloat16,NVIDIA RTX 3090,23.57,stated,0.6.6,V0,Flash Attention,0.90,8192,16,,,"
           "False,1,16,14.25,1.09,0.10,,11.54,,,,ok,synthetic,synthetic,")
    data = tmp_path / "obs.csv"
    data.write_text(header + "\n" + row + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "bench", "accuracy.py"), "--data", str(data)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "kv cache" in result.stdout and "MISSED" in result.stdout


def test_a_row_naming_a_catalog_model_is_planned_with_it():
    """A row's own model id wins over the architecture map: an FP8 checkpoint is not planned as
    the 16-bit model whose name it starts with."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))
    import accuracy  # noqa: PLC0415  (bench/ is not a package)

    assert accuracy.catalog_id({"row_id": "900", "model": "Qwen/Qwen3-8B-FP8 (stated)"}) == "Qwen/Qwen3-8B-FP8"
    assert accuracy.catalog_id({"row_id": "901", "model": "qwen/qwen3-4b-awq"}) == "Qwen/Qwen3-4B-AWQ"
    assert accuracy.catalog_id({"row_id": "902", "model": "Qwen/Qwen3-8B"}) == "Qwen/Qwen3-8B"
    assert accuracy.catalog_id({"row_id": "903", "model": "acme/unknown-7b"}) is None
