"""Table-driven tests of filter_plugins/rollout_report.py (the fleet rollout report).

The GPU dicts are the shape filter_plugins' nvidia-smi parser returns (docs/architecture.md,
"GPU dict"); the resolved tiers the shape of `vllm_tier_resolve` (same page). Values are taken
from the recordings in tests/doubles/recordings/nvidia-smi (RTX 2070 8 GB, RTX 4090 24 GB).
"""
from __future__ import annotations

import json

import pytest

import rollout_report as rr

RTX2070 = {"index": 0, "name": "NVIDIA GeForce RTX 2070", "uuid": "GPU-1", "memory_total_mib": 8192,
           "memory_used_mib": 0, "memory_free_mib": 7982, "compute_capability": "7.5", "driver_version": "535.54.03"}
RTX4090 = {"index": 0, "name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-2", "memory_total_mib": 24564,
           "compute_capability": "8.9", "driver_version": "550.54.14"}
SINGLE = {"name": "single", "requested": "auto", "compose_file": "docker-compose.vllm-lite.yml", "vllm_mode": "single",
          "fits": True, "instances": [{"name": "vllm", "model": "Qwen/Qwen2.5-3B-Instruct-AWQ", "port": 8000,
                                       "gpu_memory_utilization": 0.85, "max_model_len": 1024,
                                       "plan": {"budget_gib": 6.8, "needs_gib": 4.1}}]}
DUAL = {"name": "dual", "requested": "auto", "compose_file": "docker-compose.vllm.yml", "vllm_mode": "dual", "fits": True,
        "instances": [{"name": "vllm", "model": "a", "port": 8000, "plan": {"budget_gib": 7.5, "needs_gib": 3.0}},
                      {"name": "vllm-large", "model": "b", "port": 8001, "plan": {"budget_gib": 12.25, "needs_gib": 9.5}}]}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # a deployed single-instance host: planned = its budget, measured/latency from verify
        (dict(result="deployed", gpu=RTX2070, tier=SINGLE,
              verify={"passed": True, "gpu": {"memory_used_mib": 7100}, "instances": [{"chat_latency_ms": 412.34}],
                      "processes": [{"used_mib": 6900}]}),
         {"result": "deployed", "health": "ok", "measured_gpu_memory_mib": 6900, "completion_latency_ms": 412.3,
          "planned": 6.8, "tier": "single", "gpu": "NVIDIA GeForce RTX 2070"}),
        # dual, in the shape of vllm_verify_results (roles/vllm_verify/tasks/main.yml): planned
        # memory is the sum of both budgets, measured the sum of both vLLM processes, the
        # latency the slower instance's
        (dict(result="deployed", gpu=RTX4090, tier=DUAL,
              verify={"passed": True, "gpu": {"memory_used_mib": 19000},
                      "instances": [{"instance": "small", "health_status": 200, "chat_latency_ms": 100},
                                    {"instance": "large", "health_status": 200, "chat_latency_ms": 250}],
                      "processes": [{"instance": "small", "used_mib": 7000}, {"instance": "large", "used_mib": 11000}]}),
         {"result": "deployed", "health": "ok", "measured_gpu_memory_mib": 18000, "completion_latency_ms": 250.0,
          "planned": 19.75, "tier": "dual", "gpu": "NVIDIA GeForce RTX 4090"}),
        # no process matched: the GPU's used memory; "passed" arrives as a string from Jinja
        (dict(result="rolled_back", gpu=RTX4090, tier=DUAL,
              verify={"passed": "False", "gpu": {"memory_used_mib": 1234}, "instances": [{"health_status": 503}], "processes": []}),
         {"result": "rolled_back", "health": "failed", "measured_gpu_memory_mib": 1234, "completion_latency_ms": None,
          "planned": 19.75, "tier": "dual", "gpu": "NVIDIA GeForce RTX 4090"}),
        # rolled back: the failed verify says unhealthy
        (dict(result="rolled_back", gpu=RTX2070, tier=SINGLE, reason="health: 503",
              verify={"passed": False, "gpu": {}, "instances": [], "processes": []}),
         {"result": "rolled_back", "health": "failed", "measured_gpu_memory_mib": None, "completion_latency_ms": None,
          "planned": 6.8, "tier": "single", "gpu": "NVIDIA GeForce RTX 2070"}),
        # a host without a GPU: nothing but the reason
        (dict(result="failed_preflight", reason=["no nvidia-smi", ""]),
         {"result": "failed_preflight", "health": "unknown", "measured_gpu_memory_mib": None,
          "completion_latency_ms": None, "planned": None, "tier": None, "gpu": None}),
    ],
)
def test_record(kwargs, expected):
    rec = rr.rollout_report_record(**kwargs)
    assert rec["result"] == expected["result"]
    assert rec["health"] == expected["health"]
    assert rec["measured_gpu_memory_mib"] == expected["measured_gpu_memory_mib"]
    assert rec["completion_latency_ms"] == expected["completion_latency_ms"]
    assert (rec["tier"] or {}).get("planned_gpu_memory_gib") == expected["planned"]
    assert (rec["tier"] or {}).get("name") == expected["tier"]
    assert (rec["gpu"] or {}).get("name") == expected["gpu"]
    json.dumps(rec)  # the record must serialise as it is written to rollout.json


def test_record_reason_list_is_joined():
    assert rr.rollout_report_record("failed_preflight", reason=["a", "", "b"])["reason"] == "a; b"


@pytest.mark.parametrize("bad", ["ok", "", "DEPLOYED", None])
def test_record_refuses_unknown_result(bad):
    with pytest.raises(rr.RolloutReportError, match="rollout_report_record: result"):
        rr.rollout_report_record(bad)


class _HostVars(dict):
    """Stands in for Ansible's hostvars: host -> mapping of that host's variables."""


def test_collect_lists_every_host_and_skips_unreached():
    hv = _HostVars({
        "a": {"__rollout_record": rr.rollout_report_record("deployed", gpu=RTX2070, tier=SINGLE)},
        "b": {"__rollout_record": rr.rollout_report_record("failed_preflight", reason="no GPU")},
        "c": {},  # never reached
        "d": {"__rollout_record": {"result": "garbage"}},  # not a record: treated as unreached
    })
    report = rr.rollout_report_collect(hv, ["a", "b", "c", "d", "e", "a"], meta={"phase": "cut-over"})
    assert [r["host"] for r in report["hosts"]] == ["a", "b", "c", "d", "e"]
    assert [r["result"] for r in report["hosts"]] == ["deployed", "failed_preflight", "skipped", "skipped", "skipped"]
    assert report["rollout"]["counts"] == {"deployed": 1, "rolled_back": 0, "failed": 0, "failed_preflight": 1, "skipped": 3}
    assert report["rollout"]["phase"] == "cut-over"
    assert report["rollout"]["hosts"] == 5


@pytest.mark.parametrize("hosts", ["a,b", None, 3])
def test_collect_refuses_non_lists(hosts):
    with pytest.raises(rr.RolloutReportError, match="rollout_report_collect"):
        rr.rollout_report_collect({}, hosts)


def test_markdown_has_one_row_per_host_and_escapes_pipes():
    hv = {"a": {"__rollout_record": rr.rollout_report_record("deployed", gpu=RTX2070, tier=SINGLE,
                                                           verify={"passed": True, "gpu": {}, "processes": [],
                                                                   "instances": [{"chat_latency_ms": 12}]})},
          "b": {"__rollout_record": rr.rollout_report_record("rolled_back", gpu=RTX4090, tier=DUAL, reason="x|y")}}
    md = rr.rollout_report_markdown(rr.rollout_report_collect(hv, ["a", "b", "c"]))
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| host")]
    assert len(rows) == 3
    assert rows[0].startswith("| a | NVIDIA GeForce RTX 2070 #0 (8192 MiB) | single | 6.8 | - | ok | 12.0 | deployed |")
    assert "**rolled_back**" in rows[1] and "x\\|y" in rows[1]
    assert rows[2].startswith("| c | - | - |") and "**skipped**" in rows[2]
    assert "deployed 1, rolled_back 1, failed 0, failed_preflight 0, skipped 1" in md


def test_markdown_refuses_other_input():
    with pytest.raises(rr.RolloutReportError, match="rollout_report_markdown"):
        rr.rollout_report_markdown({"hosts": "nope"})


@pytest.mark.parametrize("verify,missing", [
    # the stand-in's old shape: caught instead of read half-way
    ({"healthy": True, "gpu_memory_used_mib": 6900, "completion_latency_ms": 42.5}, "passed, instances, processes, gpu"),
    ({"passed": True, "instances": [], "gpu": {}}, "processes"),
])
def test_verify_has_one_shape(verify, missing):
    with pytest.raises(rr.RolloutReportError, match=f"verify lacks {missing}"):
        rr.rollout_report_record("deployed", verify=verify)


def test_fingerprint_ignores_key_order_and_sees_values():
    assert rr.rollout_fingerprint({"a": 1, "b": [1, 2]}) == rr.rollout_fingerprint({"b": [1, 2], "a": 1})
    assert rr.rollout_fingerprint({"a": 1}) != rr.rollout_fingerprint({"a": 2})


def test_stamp_content_is_stable_and_checked():
    files = {".env": "abc", "docker-compose.vllm.yml": "absent"}
    text = rr.rollout_stamp_content("f" * 64, files)
    assert text == rr.rollout_stamp_content("f" * 64, dict(reversed(list(files.items()))))
    assert json.loads(text) == {"fingerprint": "f" * 64, "files": files} and text.endswith("\n")
    assert text != rr.rollout_stamp_content("f" * 64, {**files, ".env": "abd"})
    with pytest.raises(rr.RolloutReportError, match="rollout_stamp_content: fingerprint"):
        rr.rollout_stamp_content("", files)
