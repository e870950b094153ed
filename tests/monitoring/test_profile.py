"""lib/libra_monitoring's inputs and shapes: errors name the field; one target, one dashboard row
and one set of plan constants per instance of the tier."""

from __future__ import annotations

import copy

import pytest

import libra_monitoring as mon


def test_one_target_and_row_per_instance(dual_tier):
    names = [i["name"] for i in dual_tier["instances"]]
    targets = mon.scrape_targets(dual_tier, 8000)
    assert [t["labels"]["libra_instance"] for t in targets] == names
    assert [t["targets"] for t in targets] == [[f"{i['service']}:8000"] for i in dual_tier["instances"]]
    rows = [p["title"].split(":")[0] for p in mon.dashboard(dual_tier)["panels"] if p["type"] == "row"]
    assert rows == ["GPU 0 and host", *names]
    panel_ids = [p["id"] for p in mon.dashboard(dual_tier)["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


def test_every_instance_query_selects_its_instance(dual_tier):
    for panel in mon.dashboard(dual_tier)["panels"]:
        title = panel["title"]
        inst = title.split(":")[0]
        if panel["type"] == "row" or inst not in {i["name"] for i in dual_tier["instances"]}:
            continue
        for target in panel["targets"]:
            assert f'libra_instance="{inst}"' in target["expr"], (title, target["expr"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t["instances"][1]["plan"].pop("kv_cache_tokens"), r"tier\.instances\[1\]\.plan\.kv_cache_tokens is missing"),
        (lambda t: t["instances"][0].pop("name"), r"tier\.instances\[0\]\.name is missing"),
        (lambda t: t.update(instances=[]), "tier.instances must be a non-empty list"),
        (lambda t: t.pop("gpu"), "tier.gpu is missing"),
    ],
)
def test_missing_fields_are_named(dual_tier, mutate, message):
    tier = copy.deepcopy(dual_tier)
    mutate(tier)
    with pytest.raises(mon.MonitoringError, match=message):
        mon.plan_rules(tier, 0)


def test_bad_settings_are_named():
    with pytest.raises(mon.MonitoringError, match="gpu_index must be a GPU index"):
        mon.alert_rules("GPU-0")
    with pytest.raises(mon.MonitoringError, match="unknown setting 'kv_saturaton'"):
        mon.alert_rules(0, {"kv_saturaton": 0.9})
    with pytest.raises(mon.MonitoringError, match=r"kv_saturation must be in \(0, 1\]"):
        mon.alert_rules(0, {"kv_saturation": 95})
    assert "0.9" in mon.alert_rules(0, {"kv_saturation": 0.9})["groups"][0]["rules"][0]["expr"]


def test_exposition_names():
    text = '# HELP x y\nvllm:a_total{engine="0"} 1.0\nup 1\nvllm:b_bucket{le="1"} 0\n\n'
    assert mon.exposed_metric_names(text) == {"vllm:a_total", "up", "vllm:b_bucket"}
