"""`vllm_stack_monitoring_enabled=true` through the real roles (site.yml --tags preflight,stack,
vllm_stack_start false, so no Docker): the compose file carries the monitoring services, and the
rules, dashboard and provisioning files are installed and valid for the real tools.

* Compose: the vendored Compose spec (check-jsonschema's compose-spec.json) after .env interpolation.
* Prometheus: `promtool check config` on the rendered prometheus.yml pointed at the rendered rules.
* Grafana: the dashboard and the provisioning files against JSON Schemas written from Grafana's
  documentation (tests/monitoring/schemas), and every datasource reference to the provisioned uid.
* The plan constants equal the planner's own numbers for the same GPU; a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from libra_planner import tiers as planner_tiers

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SCHEMAS = Path(__file__).parent / "schemas"
HOSTS = {
    "dual-4090": {"tier": "dual", "gpu_facts_preset": "rtx4090", "vllm_stack_monitoring_enabled": True},
    "single-2070": {"tier": "single", "gpu_facts_preset": "rtx2070"},
}
MONITORING_SERVICES = {"prometheus", "grafana", "dcgm-exporter", "node-exporter"}


def _play(work: Path):
    hosts = {}
    for name, hv in HOSTS.items():
        hosts[name] = dict(hv, ansible_connection="local", ansible_python_interpreter=sys.executable, vllm_stack_dir=str(work / name),
                           vllm_stack_start=False, vllm_stack_validate_with_docker=False, preflight_show_summary=False, preflight_picture_dir="")
    (work / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"vllm_hosts": {"hosts": hosts}}}}))
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "site.yml", "-i", str(work / "hosts.yml"), "--tags", "preflight,stack"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    work = tmp_path_factory.mktemp("monitoring-render")
    first = _play(work)
    second = _play(work)
    return {"work": work, "first": first, "second": second}


def _env(path: Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value
    return env


def _compose(host_dir: Path) -> dict:
    compose = next(host_dir.glob("docker-compose.vllm*.yml"))
    env = _env(host_dir / ".env")
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], compose.read_text())
    return yaml.safe_load(text)


def _expected_tier(host: str) -> dict:
    hv = HOSTS[host]
    return planner_tiers.resolve_tier(None, hv["tier"], planner_tiers.gpu_from_preset(hv["gpu_facts_preset"]), suggest=False)


@pytest.mark.parametrize("host", list(HOSTS))
def test_files_and_services(rendered, host):
    import check_jsonschema

    d = rendered["work"] / host
    for rel in ("prometheus/prometheus.yml", "prometheus/rules/libra-plan.yml", "prometheus/rules/libra-alerts.yml",
                "grafana/provisioning/datasources/prometheus.yml", "grafana/provisioning/dashboards/libra.yml",
                "grafana/dashboards/libra-vllm.json"):
        assert (d / rel).is_file(), rel
    spec = json.loads((Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json").read_text())
    # the Compose spec, on the file as written (variables not yet interpolated)
    raw = yaml.safe_load(next(d.glob("docker-compose.vllm*.yml")).read_text())
    errors = sorted(str(e) for e in jsonschema.Draft7Validator(spec).iter_errors(raw))
    assert not errors, errors
    compose = _compose(d)
    services = compose["services"]
    assert MONITORING_SERVICES <= set(services)
    for name in MONITORING_SERVICES:
        assert services[name]["profiles"] == ["monitoring"], name
    limits = {name: services[name]["mem_limit"] for name in MONITORING_SERVICES}
    assert limits == {"prometheus": "384m", "grafana": "256m", "dcgm-exporter": "256m", "node-exporter": "64m"}
    assert services["dcgm-exporter"]["image"].startswith("nvcr.io/nvidia/k8s/dcgm-exporter:")
    gpu = services["dcgm-exporter"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and gpu["device_ids"] == ["0"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]
    # the provider's path is where the dashboards are mounted
    provider = yaml.safe_load((d / "grafana/provisioning/dashboards/libra.yml").read_text())
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert mounts[provider["providers"][0]["options"]["path"]] == "./grafana/dashboards"


@pytest.mark.parametrize("host", list(HOSTS))
def test_prometheus_config_and_rules_pass_promtool(rendered, host, promtool, tmp_path):
    d = rendered["work"] / host
    config = yaml.safe_load((d / "prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    # promtool reads the rules through the config, from where this host's files are
    config["rule_files"] = [str(d / "prometheus/rules/*.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") >= 3  # the config and both rules files
    tier = _expected_tier(host)
    vllm_job = next(j for j in config["scrape_configs"] if j["job_name"] == "vllm")
    assert [(c["targets"], c["labels"]["libra_instance"]) for c in vllm_job["static_configs"]] == [
        ([f"{i['service']}:8000"], i["name"]) for i in tier["instances"]]
    assert {j["job_name"] for j in config["scrape_configs"]} == {"vllm", "dcgm", "node", "prometheus"}


@pytest.mark.parametrize("host", list(HOSTS))
def test_plan_constants_are_this_hosts_plan(rendered, host):
    rules = yaml.safe_load((rendered["work"] / host / "prometheus/rules/libra-plan.yml").read_text())["groups"][0]["rules"]
    by = {(r["record"], tuple(sorted(r["labels"].items()))): r["expr"] for r in rules}
    tier = _expected_tier(host)
    for inst in tier["instances"]:
        key = ("libra_plan_kv_cache_tokens", (("libra_instance", inst["name"]),))
        assert by[key] == f"vector({inst['plan']['kv_cache_tokens']})"
    total = sum(i["plan"]["needs_bytes"] for i in tier["instances"])
    assert by[("libra_plan_gpu_needs_bytes_total", (("gpu", "0"),))] == f"vector({total})"


@pytest.mark.parametrize("host", list(HOSTS))
def test_grafana_files_match_the_documented_format(rendered, host):
    d = rendered["work"] / host
    board = json.loads((d / "grafana/dashboards/libra-vllm.json").read_text())
    jsonschema.validate(board, json.loads((SCHEMAS / "grafana-dashboard.schema.json").read_text()))
    provisioning = json.loads((SCHEMAS / "grafana-provisioning.schema.json").read_text())
    datasource = yaml.safe_load((d / "grafana/provisioning/datasources/prometheus.yml").read_text())
    jsonschema.validate(datasource, provisioning)
    jsonschema.validate(yaml.safe_load((d / "grafana/provisioning/dashboards/libra.yml").read_text()), provisioning)
    uid = datasource["datasources"][0]["uid"]
    refs = [p["datasource"]["uid"] for p in board["panels"] if "datasource" in p]
    refs += [t["datasource"]["uid"] for p in board["panels"] for t in p.get("targets", [])]
    assert refs and set(refs) == {uid}
    # a row per instance, named after it
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert [r.split(":")[0] for r in rows[1:]] == [i["name"] for i in _expected_tier(host)["instances"]]


def test_the_schema_can_fail():
    schema = json.loads((SCHEMAS / "grafana-dashboard.schema.json").read_text())
    bad = {"uid": "libra-vllm", "title": "x", "schemaVersion": 39, "version": 1, "time": {"from": "now-1h", "to": "now"},
           "templating": {"list": []}, "annotations": {"list": []},
           "panels": [{"id": 1, "type": "timeseries", "title": "t", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
                       "datasource": {"type": "prometheus", "uid": "p"}, "fieldConfig": {"defaults": {}, "overrides": []},
                       "targets": [{"refId": "A"}]}]}
    with pytest.raises(jsonschema.ValidationError, match="'expr' is a required property"):
        jsonschema.validate(bad, schema)


def test_second_run_changes_nothing(rendered):
    stats = rendered["second"]["stats"]
    assert {host: stats[host]["changed"] for host in HOSTS} == {host: 0 for host in HOSTS}
