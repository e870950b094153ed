"""Pure-Python GPU memory planner for vLLM (no Ansible imports).

The Ansible ``FilterModule`` in ``filter_plugins/vllm.py`` wraps these functions.
"""

from __future__ import annotations

from .errors import PlannerError
from .memory import choose_dtype, plan_instance
from .models import load_model_catalog, resolve_model_config
from .multi import plan_instances, solve_utilization

__all__ = [
    "PlannerError",
    "choose_dtype",
    "load_model_catalog",
    "plan_instance",
    "plan_instances",
    "resolve_model_config",
    "solve_utilization",
]
