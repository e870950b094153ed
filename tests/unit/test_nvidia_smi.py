"""nvidia-smi parsing over real recordings.

Two sources of input:
* the recorded GPUs of the nvidia-smi test double (tests/doubles/recordings/nvidia-smi/*.json,
  each citing the GitHub issue its output was pasted in), replayed through the double itself,
  so the parser reads exactly what roles/gpu_facts reads on a test host;
* lines quoted from public reports, cited per row.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

from libra_planner.errors import PlannerError
from libra_planner.nvidia_smi import APPS_QUERY_ARGS, GPU_QUERY_ARGS, parse_compute_apps, parse_gpus, select_gpu

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOUBLES = os.path.join(ROOT, "tests", "doubles")
DOUBLE = os.path.join(DOUBLES, "bin", "nvidia-smi")
RECORDINGS = sorted(glob.glob(os.path.join(DOUBLES, "recordings", "nvidia-smi", "*.json")))


def _run_double(tmp_path, recording: str | None, args):
    gpu_file = tmp_path / "gpu"
    if recording is not None:
        gpu_file.write_text(recording + "\n")
    env = dict(os.environ, LIBRA_TEST_SHARE=DOUBLES, LIBRA_TEST_GPU_FILE=str(gpu_file))
    return subprocess.run([sys.executable, DOUBLE, *args], capture_output=True, text=True, env=env, check=False, timeout=30)


needs_double = pytest.mark.skipif(not os.path.exists(DOUBLE) or not RECORDINGS, reason="the nvidia-smi test double and its recordings are not in this checkout")


@needs_double
@pytest.mark.parametrize("path", RECORDINGS, ids=[os.path.basename(p)[:-5] for p in RECORDINGS])
def test_recorded_gpus_parse(tmp_path, path):
    with open(path, encoding="utf-8") as handle:
        recording = json.load(handle)
    assert recording.get("source", "").startswith("https://"), "every recording cites its source"
    result = _run_double(tmp_path, os.path.basename(path)[:-5], GPU_QUERY_ARGS)
    if int(recording["driver_version"].split(".")[0]) < 510:
        # Drivers before R510 refuse the compute_cap field (huggingface/candle#733); the parser
        # turns that refusal into a message naming the driver as the problem.
        assert result.returncode != 0
        with pytest.raises(PlannerError, match="driver is too old to report compute_cap"):
            parse_gpus(result.stdout)
        return
    assert result.returncode == 0, result.stdout + result.stderr
    gpus = parse_gpus(result.stdout)
    assert [g["index"] for g in gpus] == [g["index"] for g in recording["gpus"]]
    for got, want in zip(gpus, recording["gpus"]):
        assert got["name"] == want["name"]
        assert got["uuid"] == want["uuid"]
        assert got["memory_total_mib"] == want["memory_total_mib"]
        assert got["compute_capability"] == want["compute_cap"]
        assert got["driver_version"] == recording["driver_version"]
        assert got["memory_used_mib"] + got["memory_free_mib"] == got["memory_total_mib"]


@needs_double
def test_multi_gpu_host_and_selection(tmp_path):
    # weicj/2080Ti-LLM-Toolbox#2: a 22 GB RTX 2080 Ti and a 24 GB TITAN RTX in one host.
    result = _run_double(tmp_path, "multi-2080ti22gb-titanrtx", GPU_QUERY_ARGS)
    gpus = parse_gpus(result.stdout.splitlines())  # stdout_lines works as well as stdout
    assert [(g["index"], g["memory_total_mib"]) for g in gpus] == [(0, 22528), (1, 24576)]
    assert select_gpu(gpus, 1)["name"] == "NVIDIA TITAN RTX"
    assert select_gpu(gpus, "0")["name"] == "NVIDIA GeForce RTX 2080 Ti"
    with pytest.raises(PlannerError) as info:
        select_gpu(gpus, 2)
    assert info.value.field == "gpu_facts_index"
    assert "[0, 1]" in info.value.message


@needs_double
def test_no_driver_is_named(tmp_path):
    result = _run_double(tmp_path, None, GPU_QUERY_ARGS)
    assert result.returncode == 9
    with pytest.raises(PlannerError) as info:
        parse_gpus(result.stdout)
    assert "cannot talk to the NVIDIA driver" in info.value.message


# What the double lists for running vLLM containers (read from the host's Docker Engine) is
# tested with a real engine in tests/doubles/test_nvidia_smi_double.py.


QUOTED_GPU_LINES = [
    # (id, source, csv line, expected dict subset)
    (
        "rtx2070",
        "NVIDIA/nvidia-docker#1643 (product name, UUID, driver 510.68.02)",
        "0, NVIDIA GeForce RTX 2070, GPU-992123ca-d6eb-e2a1-828d-f3986937a67c, 8192, 1, 7979, 7.5, 510.68.02",
        {"index": 0, "memory_total_mib": 8192, "memory_used_mib": 1, "memory_free_mib": 7979, "compute_capability": "7.5"},
    ),
    (
        "rtx4090-used",
        "RLinf/RLinf#255 (507MiB / 24564MiB used, driver 550.163.01; the paste has no UUID, so [N/A] here)",
        "0, NVIDIA GeForce RTX 4090, [N/A], 24564, 507, 24057, 8.9, 550.163.01",
        {"memory_total_mib": 24564, "memory_used_mib": 507, "uuid": None, "compute_capability": "8.9"},
    ),
    (
        "h100-not-supported-fields",
        "wilicc/gpu-burn#114 (81559MiB total, driver 550.90.07); used/free set to [Not Supported] and a placeholder UUID to exercise those markers",
        "3, NVIDIA H100 80GB HBM3, GPU-00000000-0000-0000-0000-000000000003, 81559, [Not Supported], [Not Supported], 9.0, 550.90.07",
        {"index": 3, "memory_total_mib": 81559, "memory_used_mib": None, "memory_free_mib": None, "compute_capability": "9.0"},
    ),
    (
        "units-left-on",
        "the same query without nounits prints '8192 MiB'",
        "0, Tesla T4, GPU-1b965d81-1d0f-6501-027c-1ecc1437f5ea, 15360 MiB, 0 MiB, 15360 MiB, 7.5, 460.32.03",
        {"memory_total_mib": 15360, "memory_free_mib": 15360},
    ),
]


@pytest.mark.parametrize("source,line,expected", [c[1:] for c in QUOTED_GPU_LINES], ids=[c[0] for c in QUOTED_GPU_LINES])
def test_quoted_lines(source, line, expected):
    (gpu,) = parse_gpus(line + "\n")
    for key, value in expected.items():
        assert gpu[key] == value, (source, key)


BAD_OUTPUTS = [
    # (id, output, field, message substring)
    (
        "driver-not-loaded",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
        "nvidia_smi",
        "cannot talk to the NVIDIA driver",
    ),
    ("no-devices", "No devices were found", "nvidia_smi", "no NVIDIA GPU"),
    # huggingface/candle#733: driver 470 does not know compute_cap
    ('old-driver', 'Field "compute_cap" is not a valid field to query.', "nvidia_smi", "driver 510 or newer"),
    ("empty", "", "nvidia_smi", "no GPU"),
    ("short-line", "0, NVIDIA GeForce RTX 2070, 8192", "nvidia_smi[0]", "expected 8 comma-separated fields"),
    # unslothai/unsloth#10703 quoting NVIDIA's DGX Spark known issues: GB10 reports memory as [N/A]
    ("unified-memory", "0, NVIDIA GB10, GPU-2dee1e25-b3b5-007e-2b55-79f2d0f2ebe5, [N/A], [N/A], [N/A], 12.1, 580.126.09", "nvidia_smi[0].memory.total", "gpu_facts_memory_total_mib"),
    ("garbage-memory", "0, X, GPU-1, lots, 1, 1, 7.5, 1", "nvidia_smi[0].memory.total", "not a number"),
    ("cap-missing", "0, X, GPU-1, 8192, 1, 8191, [N/A], 1", "nvidia_smi[0].compute_cap", "compute capability"),
]


@pytest.mark.parametrize("output,field,needle", [c[1:] for c in BAD_OUTPUTS], ids=[c[0] for c in BAD_OUTPUTS])
def test_bad_outputs_name_the_problem(output, field, needle):
    with pytest.raises(PlannerError) as info:
        parse_gpus(output)
    assert info.value.filter_name == "vllm_parse_nvidia_smi"
    assert info.value.field == field
    assert needle in info.value.message


def test_compute_apps_lines():
    out = "1234, /usr/bin/python3, 21395, GPU-aaaa\n77, VLLM::EngineCore, [N/A], GPU-bbbb\n"
    apps = parse_compute_apps(out)
    assert apps == [
        {"pid": 1234, "process_name": "/usr/bin/python3", "used_memory_mib": 21395, "gpu_uuid": "GPU-aaaa"},
        {"pid": 77, "process_name": "VLLM::EngineCore", "used_memory_mib": None, "gpu_uuid": "GPU-bbbb"},
    ]
    assert parse_compute_apps("") == []
    with pytest.raises(PlannerError):
        parse_compute_apps("12, python")
