"""Ansible filters for the monitoring profile of roles/vllm_stack: thin wrappers over
``lib/libra_monitoring`` (recording rules holding the plan, alert rules, Grafana dashboard).

    {{ vllm_stack_tier | vllm_monitoring_plan_rules(gpu_index, gpu_margin_gib) | to_nice_yaml }}
    {{ gpu_index | vllm_monitoring_alert_rules(settings) | to_nice_yaml }}
    {{ vllm_stack_tier | vllm_monitoring_dashboard(gpu_index) | to_nice_json }}
    {{ vllm_stack_tier | vllm_monitoring_targets(container_port) | to_nice_yaml }}
"""

from __future__ import annotations

import os
import sys

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from libra_common import ansible_filter, lib_module  # noqa: E402


def _mon():
    """lib/libra_monitoring, imported when a filter first runs (see lib/libra_common.py)."""
    return lib_module("libra_monitoring")


def _wrap(func):
    return ansible_filter(func, "libra_monitoring:MonitoringError")


def vllm_monitoring_plan_rules(tier, gpu_index=0, gpu_margin_gib=None):
    mon = _mon()
    margin = mon.DEFAULTS["gpu_margin_gib"] if gpu_margin_gib is None else gpu_margin_gib
    return mon.plan_rules(tier, gpu_index, float(margin))


def vllm_monitoring_alert_rules(gpu_index=0, settings=None):
    return _mon().alert_rules(gpu_index, settings)


def vllm_monitoring_dashboard(tier, gpu_index=0):
    return _mon().dashboard(tier, gpu_index)


def vllm_monitoring_targets(tier, container_port):
    return _mon().scrape_targets(tier, int(container_port))


class FilterModule:
    def filters(self):
        return {
            "vllm_monitoring_plan_rules": _wrap(vllm_monitoring_plan_rules),
            "vllm_monitoring_alert_rules": _wrap(vllm_monitoring_alert_rules),
            "vllm_monitoring_dashboard": _wrap(vllm_monitoring_dashboard),
            "vllm_monitoring_targets": _wrap(vllm_monitoring_targets),
        }
