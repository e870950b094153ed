"""Several vLLM instances on one GPU (stub, filled in next)."""

from __future__ import annotations


def plan_instances(instances: list[dict], gpu: dict, filter_name: str = "vllm_multi_plan") -> dict:
    raise NotImplementedError


def solve_utilization(
    instances: list[dict],
    gpu: dict,
    min_concurrency: int = 1,
    margin_gib: float = 0.25,
    filter_name: str = "vllm_solve_utilization",
) -> list[float]:
    raise NotImplementedError
