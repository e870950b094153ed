"""Per-instance GPU memory accounting (stub, filled in next)."""

from __future__ import annotations


def choose_dtype(compute_capability: str, requested: str | None, model_dtype: str, filter_name: str) -> str:
    raise NotImplementedError


def plan_instance(instance: dict, gpu: dict, filter_name: str = "vllm_memory_plan") -> dict:
    raise NotImplementedError
