"""The monitoring profile's content, built from the resolved tier: Prometheus recording rules that
carry this host's plan as constants, the alert rules, and the Grafana dashboard.

Pure functions returning plain dicts; roles/vllm_stack renders them with to_nice_yaml/to_nice_json
(filter_plugins/monitoring.py). Every metric name comes from a cited source:

* vLLM 0.32.0 (the pinned release), ``vllm/v1/metrics/loggers.py`` (class PrometheusStatLogger):
  ``vllm:num_requests_running`` and ``vllm:num_requests_waiting`` (gauges),
  ``vllm:kv_cache_usage_perc`` (gauge, "1 means 100 percent usage"), the counters
  ``vllm:num_preemptions``, ``vllm:prompt_tokens``, ``vllm:generation_tokens`` (exposed with
  prometheus_client's ``_total`` suffix) and the histogram ``vllm:time_to_first_token_seconds``
  (``_bucket`` series), all labelled ``model_name`` and ``engine``. There is no
  ``vllm:gpu_cache_usage_perc`` in that release.
* NVIDIA dcgm-exporter, ``etc/default-counters.csv`` (github.com/NVIDIA/dcgm-exporter):
  ``DCGM_FI_DEV_FB_USED`` and ``DCGM_FI_DEV_FB_FREE`` (gauges, MiB), ``DCGM_FI_DEV_GPU_UTIL``
  (gauge, %); series labelled ``gpu`` (the index), ``UUID``, ``device``, ``modelName``.
* Prometheus node_exporter, vmstat collector (enabled by default; its default
  ``--collector.vmstat.fields`` matches ``pswp``): ``node_vmstat_pswpin`` and
  ``node_vmstat_pswpout`` (pages swapped in/out since boot), and ``node_memory_SwapTotal_bytes``
  / ``node_memory_SwapFree_bytes`` from the meminfo collector.
* Prometheus itself: ``up`` per scrape target.

Series of the vLLM job carry ``libra_instance`` (the tier's instance name, set per target in
prometheus.yml); the plan constants carry the same label, so one ``on(libra_instance)`` joins them.
"""

from __future__ import annotations

from typing import Any

MIB = 1 << 20
GIB = 1 << 30

VLLM_JOB = "vllm"
DATASOURCE_UID = "libra-prometheus"
DASHBOARD_UID = "libra-vllm"

# Metric names, grouped by where they come from (sources in the module docstring).
VLLM_METRICS = {
    "running": "vllm:num_requests_running",
    "waiting": "vllm:num_requests_waiting",
    "kv_usage": "vllm:kv_cache_usage_perc",
    "preemptions": "vllm:num_preemptions_total",
    "prompt_tokens": "vllm:prompt_tokens_total",
    "generation_tokens": "vllm:generation_tokens_total",
    "ttft_bucket": "vllm:time_to_first_token_seconds_bucket",
}
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
NODE_SWAP_IN = "node_vmstat_pswpin"
NODE_SWAP_OUT = "node_vmstat_pswpout"

# Defaults of the alert thresholds (roles/vllm_stack exposes them as variables).
DEFAULTS = {
    "gpu_margin_gib": 0.5,
    "kv_saturation": 0.95,
    "kv_saturation_for": "5m",
    "preemptions_for": "5m",
    "down_for": "2m",
    "restarts_window": "30m",
    "gpu_over_for": "5m",
    "swap_pages_per_second": 100,
    "swap_for": "5m",
}


class MonitoringError(ValueError):
    """Bad input; the message names the filter and the field."""


def _need(mapping: Any, key: str, where: str, filter_name: str) -> Any:
    if not isinstance(mapping, dict) or mapping.get(key) is None:
        raise MonitoringError(f"{filter_name}: {where}.{key} is missing")
    return mapping[key]


def _instances(tier: Any, filter_name: str) -> list[dict]:
    instances = _need(tier, "instances", "tier", filter_name)
    if not isinstance(instances, list) or not instances:
        raise MonitoringError(f"{filter_name}: tier.instances must be a non-empty list")
    out = []
    for index, inst in enumerate(instances):
        where = f"tier.instances[{index}]"
        plan = _need(inst, "plan", where, filter_name)
        out.append(
            {
                "name": str(_need(inst, "name", where, filter_name)),
                "service": str(_need(inst, "service", where, filter_name)),
                "served_model_name": str(inst.get("served_model_name") or inst.get("model") or ""),
                "kv_cache_tokens": int(_need(plan, "kv_cache_tokens", f"{where}.plan", filter_name)),
                "max_model_len": int(_need(plan, "max_model_len", f"{where}.plan", filter_name)),
                "max_num_seqs": int(_need(plan, "max_num_seqs", f"{where}.plan", filter_name)),
                "budget_bytes": int(_need(plan, "budget_bytes", f"{where}.plan", filter_name)),
                "needs_bytes": int(_need(plan, "needs_bytes", f"{where}.plan", filter_name)),
            }
        )
    return out


def _gpu_index(gpu_index: Any, filter_name: str) -> str:
    text = str(gpu_index).strip()
    if not text.isdigit():
        raise MonitoringError(f"{filter_name}: gpu_index must be a GPU index such as 0 (got {gpu_index!r})")
    return text


def scrape_targets(tier: dict, container_port: int, filter_name: str = "vllm_monitoring_targets") -> list[dict]:
    """prometheus.yml static_configs of the vLLM job: one target per instance, labelled."""
    return [
        {"targets": [f"{inst['service']}:{int(container_port)}"], "labels": {"libra_instance": inst["name"]}}
        for inst in _instances(tier, filter_name)
    ]


def plan_rules(tier: dict, gpu_index: Any = 0, gpu_margin_gib: float = DEFAULTS["gpu_margin_gib"], filter_name: str = "vllm_monitoring_plan_rules") -> dict:
    """Recording rules that hold this host's plan as constant series (a Prometheus rules file).

    Per instance (label ``libra_instance``): ``libra_plan_kv_cache_tokens``,
    ``libra_plan_max_model_len``, ``libra_plan_max_num_seqs``, ``libra_plan_gpu_budget_bytes``
    (gpu_memory_utilization x total) and ``libra_plan_gpu_needs_bytes`` (budget plus the CUDA
    context and graphs outside it). Per card (label ``gpu``, as dcgm-exporter's):
    ``libra_plan_gpu_needs_bytes_total`` (all instances), ``libra_plan_gpu_margin_bytes`` and
    ``libra_plan_gpu_total_bytes``.
    """
    gpu = _gpu_index(gpu_index, filter_name)
    if isinstance(gpu_margin_gib, bool) or not isinstance(gpu_margin_gib, (int, float)) or gpu_margin_gib < 0:
        raise MonitoringError(f"{filter_name}: gpu_margin_gib must be a number >= 0 (got {gpu_margin_gib!r})")
    instances = _instances(tier, filter_name)
    total_mib = _need(_need(tier, "gpu", "tier", filter_name), "memory_total_mib", "tier.gpu", filter_name)
    rules: list[dict] = []
    per_instance = (
        ("libra_plan_kv_cache_tokens", "kv_cache_tokens"),
        ("libra_plan_max_model_len", "max_model_len"),
        ("libra_plan_max_num_seqs", "max_num_seqs"),
        ("libra_plan_gpu_budget_bytes", "budget_bytes"),
        ("libra_plan_gpu_needs_bytes", "needs_bytes"),
    )
    for inst in instances:
        for record, key in per_instance:
            rules.append({"record": record, "expr": f"vector({inst[key]})", "labels": {"libra_instance": inst["name"]}})
    card = (
        ("libra_plan_gpu_needs_bytes_total", sum(i["needs_bytes"] for i in instances)),
        ("libra_plan_gpu_margin_bytes", int(round(gpu_margin_gib * GIB))),
        ("libra_plan_gpu_total_bytes", int(round(float(total_mib) * MIB))),
    )
    for record, value in card:
        rules.append({"record": record, "expr": f"vector({value})", "labels": {"gpu": gpu}})
    return {"groups": [{"name": "libra-plan", "rules": rules}]}


def alert_rules(gpu_index: Any = 0, settings: dict | None = None, filter_name: str = "vllm_monitoring_alert_rules") -> dict:
    """The alert rules (a Prometheus rules file); thresholds from ``settings`` over DEFAULTS."""
    gpu = _gpu_index(gpu_index, filter_name)
    s = dict(DEFAULTS)
    for key, value in (settings or {}).items():
        if key not in DEFAULTS:
            raise MonitoringError(f"{filter_name}: unknown setting {key!r}; known: {', '.join(sorted(DEFAULTS))}")
        if value is not None:
            s[key] = value
    if not 0 < float(s["kv_saturation"]) <= 1:
        raise MonitoringError(f"{filter_name}: kv_saturation must be in (0, 1] (got {s['kv_saturation']!r})")
    m = VLLM_METRICS
    job = f'job="{VLLM_JOB}"'
    rules = [
        {
            "alert": "LibraKVCacheSaturated",
            "expr": f'{m["kv_usage"]}{{{job}}} >= {float(s["kv_saturation"])}',
            "for": s["kv_saturation_for"],
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "vLLM {{ $labels.libra_instance }}: KV cache nearly full",
                "description": "The KV cache the plan sized has stayed near full: requests queue or get preempted. "
                "Lower max_num_seqs or max_model_len, or give the instance a larger gpu_memory_utilization.",
            },
        },
        {
            "alert": "LibraPreemptionsRising",
            "expr": f'increase({m["preemptions"]}{{{job}}}[5m]) > 0',
            "for": s["preemptions_for"],
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "vLLM {{ $labels.libra_instance }}: requests are being preempted",
                "description": "The scheduler keeps evicting running requests for lack of KV cache blocks.",
            },
        },
        {
            "alert": "LibraInstanceDown",
            "expr": f"up{{{job}}} == 0",
            "for": s["down_for"],
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "vLLM {{ $labels.libra_instance }} does not answer /metrics",
                "description": "The container is down, restarting or still loading its model.",
            },
        },
        {
            "alert": "LibraInstanceRestarting",
            # A restart makes the target go down then up again: more than one drop in the window.
            "expr": f"changes(up{{{job}}}[{s['restarts_window']}]) > 2",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "vLLM {{ $labels.libra_instance }} keeps restarting (down and up again within " + str(s["restarts_window"]) + ")",
                "description": "A restart loop: look at the container's logs (out of memory, CUDA error).",
            },
        },
        {
            "alert": "LibraGPUMemoryOverPlan",
            "expr": (
                f'{DCGM_FB_USED}{{gpu="{gpu}"}} * {MIB} > on(gpu) group_left() '
                f'(libra_plan_gpu_needs_bytes_total{{gpu="{gpu}"}} + on(gpu) libra_plan_gpu_margin_bytes{{gpu="{gpu}"}})'
            ),
            "for": s["gpu_over_for"],
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "GPU {{ $labels.gpu }} holds more memory than the plan allows",
                "description": "Framebuffer use is above what the plan's instances need plus the margin: "
                "another process holds GPU memory, or vLLM uses more than planned.",
            },
        },
        {
            "alert": "LibraHostSwapping",
            "expr": f"rate({NODE_SWAP_IN}[5m]) + rate({NODE_SWAP_OUT}[5m]) > {float(s['swap_pages_per_second'])}",
            "for": s["swap_for"],
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "The host {{ $labels.instance }} is swapping",
                "description": "Host RAM is short: lower the container memory limits, vLLM --swap-space, or stop the monitoring profile.",
            },
        },
    ]
    return {"groups": [{"name": "libra-alerts", "rules": rules}]}


# --------------------------------------------------------------------------- dashboard

def _target(expr: str, legend: str, ref: str) -> dict:
    return {"refId": ref, "expr": expr, "legendFormat": legend, "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}}


def _panel(pid: int, title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int, w: int = 8, h: int = 8, description: str = "") -> dict:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
    }


def _row(pid: int, title: str, y: int) -> dict:
    return {"id": pid, "type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}


def dashboard(tier: dict, gpu_index: Any = 0, filter_name: str = "vllm_monitoring_dashboard") -> dict:
    """The Grafana dashboard (JSON model) for this tier: a GPU/host row, then a row per instance."""
    gpu = _gpu_index(gpu_index, filter_name)
    instances = _instances(tier, filter_name)
    m = VLLM_METRICS
    panels: list[dict] = []
    pid = 0

    def next_id() -> int:
        nonlocal pid
        pid += 1
        return pid

    y = 0
    panels.append(_row(next_id(), f"GPU {gpu} and host", y))
    y += 1
    panels.append(
        _panel(
            next_id(),
            "GPU memory used against the plan",
            [
                (f'{DCGM_FB_USED}{{gpu="{gpu}"}} * {MIB}', "used (dcgm-exporter)"),
                (f'libra_plan_gpu_needs_bytes_total{{gpu="{gpu}"}}', "planned: all instances"),
                (f'libra_plan_gpu_needs_bytes_total{{gpu="{gpu}"}} + on(gpu) libra_plan_gpu_margin_bytes{{gpu="{gpu}"}}', "alert above"),
                (f'libra_plan_gpu_total_bytes{{gpu="{gpu}"}}', "card total"),
            ],
            "bytes",
            0,
            y,
            w=12,
            description="Framebuffer memory in use (DCGM_FI_DEV_FB_USED) against what the plan's instances need.",
        )
    )
    panels.append(
        _panel(
            next_id(),
            "GPU utilization and host swapping",
            [(f'{DCGM_GPU_UTIL}{{gpu="{gpu}"}}', "GPU utilization %"), (f"rate({NODE_SWAP_IN}[5m]) + rate({NODE_SWAP_OUT}[5m])", "swap pages/s")],
            "short",
            12,
            y,
            w=12,
        )
    )
    y += 8
    for inst in instances:
        sel = f'{{job="{VLLM_JOB}",libra_instance="{inst["name"]}"}}'
        plan_sel = f'{{libra_instance="{inst["name"]}"}}'
        panels.append(_row(next_id(), f"{inst['name']}: {inst['served_model_name']}", y))
        y += 1
        panels.append(
            _panel(
                next_id(),
                f"{inst['name']}: requests running and waiting",
                [
                    (f"{m['running']}{sel}", "running"),
                    (f"{m['waiting']}{sel}", "waiting"),
                    (f"libra_plan_max_num_seqs{plan_sel}", "max_num_seqs (plan)"),
                ],
                "short",
                0,
                y,
            )
        )
        panels.append(
            _panel(
                next_id(),
                f"{inst['name']}: KV cache tokens in use against the plan",
                [
                    (f"{m['kv_usage']}{sel} * on(libra_instance) group_left() libra_plan_kv_cache_tokens{plan_sel}", "in use (usage x planned capacity)"),
                    (f"libra_plan_kv_cache_tokens{plan_sel}", "planned capacity"),
                    (f"libra_plan_max_model_len{plan_sel}", "one max_model_len request"),
                ],
                "short",
                8,
                y,
                description="vllm:kv_cache_usage_perc times the KV cache tokens the plan computed for this instance.",
            )
        )
        panels.append(
            _panel(
                next_id(),
                f"{inst['name']}: preemptions (5 min)",
                [(f"increase({m['preemptions']}{sel}[5m])", "preempted")],
                "short",
                16,
                y,
            )
        )
        y += 8
        panels.append(
            _panel(
                next_id(),
                f"{inst['name']}: time to first token",
                [
                    (f"histogram_quantile(0.5, sum by (le) (rate({m['ttft_bucket']}{sel}[5m])))", "p50"),
                    (f"histogram_quantile(0.95, sum by (le) (rate({m['ttft_bucket']}{sel}[5m])))", "p95"),
                ],
                "s",
                0,
                y,
                w=12,
            )
        )
        panels.append(
            _panel(
                next_id(),
                f"{inst['name']}: tokens per second",
                [
                    (f"sum(rate({m['generation_tokens']}{sel}[1m]))", "generated"),
                    (f"sum(rate({m['prompt_tokens']}{sel}[1m]))", "prompt"),
                ],
                "short",
                12,
                y,
                w=12,
            )
        )
        y += 8
    return {
        "uid": DASHBOARD_UID,
        "title": f"libra vLLM: tier {tier.get('name', '')}",
        "tags": ["libra", "vllm"],
        "timezone": "browser",
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_exprs(board: dict) -> list[str]:
    """Every PromQL expression of a dashboard, panels in order."""
    return [t["expr"] for p in board.get("panels", []) for t in p.get("targets", [])]


# --------------------------------------------------------------------------- metric names

def vllm_metric_names(exprs: list[str]) -> set[str]:
    """The ``vllm:...`` series names a list of PromQL expressions reads."""
    import re  # noqa: PLC0415

    names: set[str] = set()
    for expr in exprs:
        names.update(re.findall(r"vllm:[A-Za-z0-9_:]+", expr))
    return names


def used_vllm_metric_names(tier: dict, gpu_index: Any = 0) -> set[str]:
    """Every vLLM series name the dashboard and the alert rules of this profile read."""
    exprs = dashboard_exprs(dashboard(tier, gpu_index))
    exprs += [r["expr"] for g in alert_rules(gpu_index)["groups"] for r in g["rules"]]
    exprs += [r["expr"] for g in plan_rules(tier, gpu_index)["groups"] for r in g["rules"]]
    return vllm_metric_names(exprs)


def exposed_metric_names(exposition: str) -> set[str]:
    """Sample names of a Prometheus text exposition (``/metrics``), e.g. ``vllm:num_preemptions_total``."""
    names: set[str] = set()
    for line in exposition.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            end = min((i for i in (line.find("{"), line.find(" ")) if i > 0), default=len(line))
            names.add(line[:end])
    return names
