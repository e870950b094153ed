"""The monitoring profile's Prometheus side checked by promtool (Debian's prometheus package):
``check rules`` on the plan constants and the alerts, ``test rules`` with unit tests that make
EACH alert fire and clear again, and every dashboard query parsed as a rule expression.

Series values and thresholds are computed here from the plan dict (needs_bytes of each instance)
and from the documented units (DCGM_FI_DEV_FB_USED in MiB, dcgm-exporter default-counters.csv).
"""

from __future__ import annotations

import math
import subprocess

import pytest
import yaml

import libra_monitoring as mon

MIB = 1 << 20
GIB = 1 << 30


def run(promtool, *args, cwd=None):
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory, dual_tier):
    d = tmp_path_factory.mktemp("rules")
    (d / "libra-plan.yml").write_text(yaml.safe_dump(mon.plan_rules(dual_tier, 0, 0.5), sort_keys=False))
    (d / "libra-alerts.yml").write_text(yaml.safe_dump(mon.alert_rules(0), sort_keys=False))
    return d


def test_check_rules(promtool, rules_dir):
    result = run(promtool, "check", "rules", str(rules_dir / "libra-plan.yml"), str(rules_dir / "libra-alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # 2 instances x 5 constants + 3 per card; 6 alerts
    assert "SUCCESS: 13 rules found" in result.stdout and "SUCCESS: 6 rules found" in result.stdout


def test_check_rules_refuses_a_broken_rule(promtool, tmp_path):
    """The check can fail: a rules file with a PromQL syntax error is refused."""
    bad = {"groups": [{"name": "x", "rules": [{"alert": "Broken", "expr": "rate(vllm:num_preemptions_total[5m]"}]}]}
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(bad))
    assert run(promtool, "check", "rules", str(tmp_path / "bad.yml")).returncode != 0


def test_dashboard_queries_parse(promtool, tmp_path, dual_tier):
    board = mon.dashboard(dual_tier, 0)
    exprs = mon.dashboard_exprs(board)
    # GPU/host row: 4 + 2 queries; per instance: requests 3, KV 3, preemptions 1, TTFT 2, tokens/s 2
    assert len(exprs) == 6 + 11 * len(dual_tier["instances"])
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"libra_dashboard_query_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(tmp_path / "dashboard.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def _alert(name: str, at: str, labels: dict | None, summary: str | None = None, description: str | None = None) -> dict:
    exp = [] if labels is None else [{"exp_labels": labels, "exp_annotations": {"summary": summary, "description": description}}]
    return {"eval_time": at, "alertname": name, "exp_alerts": exp}


def _annotations(name: str) -> dict:
    rule = next(r for r in mon.alert_rules(0)["groups"][0]["rules"] if r["alert"] == name)
    return rule["annotations"]


def _expected(name: str, labels: dict, **template) -> tuple[dict, str, str]:
    ann = _annotations(name)
    summary = ann["summary"]
    for key, value in template.items():
        summary = summary.replace("{{ $labels." + key + " }}", value)
    return labels, summary, ann["description"]


def test_every_alert_fires_and_clears(promtool, rules_dir, dual_tier):
    small = {"job": "vllm", "libra_instance": "small", "instance": "vllm:8000", "model_name": "m", "engine": "0"}
    up_small = {"job": "vllm", "libra_instance": "small", "instance": "vllm:8000"}
    gpu = {"gpu": "0", "UUID": "GPU-1", "modelName": "NVIDIA GeForce RTX 4090"}
    node = {"job": "node", "instance": "node-exporter:9100"}

    # What the plan's instances need on the card, from the plan dict, and the alert line above it.
    needs = sum(inst["plan"]["needs_bytes"] for inst in dual_tier["instances"])
    limit = needs + 0.5 * GIB
    below_mib = math.floor(needs / MIB) - 64
    above_mib = math.ceil(limit / MIB) + 64

    def lab(d):
        return "{" + ",".join(f'{k}="{v}"' for k, v in d.items()) + "}"

    tests = [
        {   # KV cache at 97 % from minute 1 to 11, then 50 %: pending at 3m, firing at 8m, clear at 15m
            "interval": "1m",
            "input_series": [{"series": "vllm:kv_cache_usage_perc" + lab(small), "values": "0.5 0.97x10 0.5x10"}],
            "alert_rule_test": [
                _alert("LibraKVCacheSaturated", "3m", None),
                _alert("LibraKVCacheSaturated", "8m", *_expected("LibraKVCacheSaturated", {**small, "severity": "warning"}, libra_instance="small")),
                _alert("LibraKVCacheSaturated", "15m", None),
            ],
        },
        {   # 2 preemptions a minute from minute 6 to 16, then none
            "interval": "1m",
            "input_series": [{"series": "vllm:num_preemptions_total" + lab(small), "values": "0x5 0+2x10 20x15"}],
            "alert_rule_test": [
                _alert("LibraPreemptionsRising", "4m", None),
                _alert("LibraPreemptionsRising", "15m", *_expected("LibraPreemptionsRising", {**small, "severity": "warning"}, libra_instance="small")),
                _alert("LibraPreemptionsRising", "30m", None),
            ],
        },
        {   # scrape fails from minute 6 to 10
            "interval": "1m",
            "input_series": [{"series": "up" + lab(up_small), "values": "1x5 0x4 1x10"}],
            "alert_rule_test": [
                _alert("LibraInstanceDown", "5m", None),
                _alert("LibraInstanceDown", "9m", *_expected("LibraInstanceDown", {**up_small, "severity": "critical"}, libra_instance="small")),
                _alert("LibraInstanceDown", "15m", None),
            ],
        },
        {   # down for one scrape three times (minutes 4, 8, 12), then up for good
            "interval": "1m",
            "input_series": [{"series": "up" + lab(up_small), "values": "1x3 0 1x2 0 1x2 0 1x35"}],
            "alert_rule_test": [
                _alert("LibraInstanceRestarting", "3m", None),
                _alert("LibraInstanceRestarting", "10m", *_expected("LibraInstanceRestarting", {**up_small, "severity": "warning"}, libra_instance="small")),
                _alert("LibraInstanceRestarting", "45m", None),
            ],
        },
        {   # GPU memory just below the plan, then above plan + margin from minute 6 to 16
            "interval": "1m",
            "input_series": [{"series": "DCGM_FI_DEV_FB_USED" + lab(gpu), "values": f"{below_mib}x5 {above_mib}x10 {below_mib}x15"}],
            "alert_rule_test": [
                _alert("LibraGPUMemoryOverPlan", "5m", None),
                _alert("LibraGPUMemoryOverPlan", "13m", *_expected("LibraGPUMemoryOverPlan", {**gpu, "severity": "warning"}, gpu="0")),
                _alert("LibraGPUMemoryOverPlan", "28m", None),
            ],
        },
        {   # 20000 pages swapped out a minute (333/s) from minute 6 to 16
            "interval": "1m",
            "input_series": [
                {"series": "node_vmstat_pswpin" + lab(node), "values": "0x30"},
                {"series": "node_vmstat_pswpout" + lab(node), "values": "0x5 0+20000x10 200000x15"},
            ],
            "alert_rule_test": [
                _alert("LibraHostSwapping", "4m", None),
                _alert("LibraHostSwapping", "14m", *_expected("LibraHostSwapping", {**node, "severity": "warning"}, instance="node-exporter:9100")),
                _alert("LibraHostSwapping", "30m", None),
            ],
        },
    ]
    alerts = {r["alert"] for r in mon.alert_rules(0)["groups"][0]["rules"]}
    tested = {t["alert_rule_test"][0]["alertname"] for t in tests}
    assert tested == alerts, "every alert needs a fire-and-clear test"
    # a GPU below plan + margin stays quiet, just above fires: the threshold is the plan's
    assert below_mib * MIB < limit < above_mib * MIB
    unit = {"rule_files": ["libra-plan.yml", "libra-alerts.yml"], "evaluation_interval": "1m", "tests": tests}
    (rules_dir / "tests.yml").write_text(yaml.safe_dump(unit, sort_keys=False))
    result = run(promtool, "test", "rules", "tests.yml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(promtool, rules_dir):
    """promtool test rules can fail: an alert expected where the series never crosses the line."""
    small = '{job="vllm",libra_instance="small",instance="vllm:8000",model_name="m",engine="0"}'
    unit = {
        "rule_files": ["libra-plan.yml", "libra-alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": "vllm:kv_cache_usage_perc" + small, "values": "0.5x20"}],
            "alert_rule_test": [{"eval_time": "10m", "alertname": "LibraKVCacheSaturated",
                                 "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "vllm", "libra_instance": "small",
                                                                "instance": "vllm:8000", "model_name": "m", "engine": "0"}}]}],
        }],
    }
    (rules_dir / "wrong.yml").write_text(yaml.safe_dump(unit, sort_keys=False))
    assert run(promtool, "test", "rules", "wrong.yml", cwd=rules_dir).returncode != 0


def test_plan_constants_hold_the_plan(promtool, rules_dir, dual_tier):
    """The recording rules evaluate to the plan's numbers (promql_expr_test on the constants)."""
    exp = []
    for inst in dual_tier["instances"]:
        plan = inst["plan"]
        for record, value in (("libra_plan_kv_cache_tokens", plan["kv_cache_tokens"]), ("libra_plan_gpu_budget_bytes", plan["budget_bytes"])):
            exp.append({"expr": f'{record}{{libra_instance="{inst["name"]}"}}', "eval_time": "1m",
                        "exp_samples": [{"labels": f'{record}{{libra_instance="{inst["name"]}"}}', "value": value}]})
    total = dual_tier["gpu"]["memory_total_mib"] * MIB
    exp.append({"expr": 'libra_plan_gpu_total_bytes{gpu="0"}', "eval_time": "1m",
                "exp_samples": [{"labels": 'libra_plan_gpu_total_bytes{gpu="0"}', "value": total}]})
    unit = {"rule_files": ["libra-plan.yml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": [], "promql_expr_test": exp}]}
    (rules_dir / "constants.yml").write_text(yaml.safe_dump(unit, sort_keys=False))
    result = run(promtool, "test", "rules", "constants.yml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
