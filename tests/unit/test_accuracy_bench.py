"""The accuracy benchmark (bench/accuracy.py) meets its targets on the repository's calibration rows (data/)."""

from __future__ import annotations

import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO_ROOT, "data", "vllm_startup_observations.csv")


def test_accuracy_benchmark_meets_targets():
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "bench", "accuracy.py"), "--data", DATA],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all targets met" in result.stdout


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
