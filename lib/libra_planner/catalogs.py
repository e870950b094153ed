"""Catalog loading: catalog/tiers.yml and catalog/gpus.yml, validated, and GPU dicts from presets.

One reason to change: the shape or location of the tier and GPU catalogs.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from typing import Any

import yaml

from .errors import PlannerError
from .validate import validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIERS_PATH = os.path.join(ROOT, "catalog", "tiers.yml")
GPUS_PATH = os.path.join(ROOT, "catalog", "gpus.yml")


def _read_yaml(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=4)
def _tier_catalog_cached(path: str) -> dict:
    return validate(_read_yaml(path), "tiers", filter_name="vllm_tier_resolve")


def load_tier_catalog(path: str | None = None) -> dict:
    """catalog/tiers.yml, validated against schemas/tiers.schema.json (a fresh copy each call)."""
    return copy.deepcopy(_tier_catalog_cached(path or TIERS_PATH))


@lru_cache(maxsize=4)
def _gpu_presets_cached(path: str) -> dict:
    return validate(_read_yaml(path), "gpus", filter_name="vllm_gpu_preset")["gpus"]


def load_gpu_presets(path: str | None = None) -> dict:
    return copy.deepcopy(_gpu_presets_cached(path or GPUS_PATH))


def gpu_from_preset(name: str, filter_name: str = "vllm_gpu_preset") -> dict:
    """A GPU dict for a preset in catalog/gpus.yml; an unknown name lists the known ones."""
    presets = load_gpu_presets()
    if not isinstance(name, str) or name not in presets:
        raise PlannerError(filter_name, "gpu_facts_preset", f"unknown GPU preset {name!r}; known presets: {', '.join(presets)}")
    gpu = dict(presets[name])
    gpu.update({"preset": name, "index": 0, "uuid": None, "memory_used_mib": None, "memory_free_mib": None, "driver_version": None})
    return gpu


def gpu_from_memory(memory_total_mib, compute_capability, name: str | None = None, filter_name: str = "vllm_gpu_preset") -> dict:
    """A GPU dict from explicit numbers (``gpu_facts_memory_total_mib`` + ``gpu_facts_compute_capability``)."""
    try:
        total = int(memory_total_mib)
    except (TypeError, ValueError):
        raise PlannerError(filter_name, "gpu_facts_memory_total_mib", f"not an integer number of MiB: {memory_total_mib!r}") from None
    if total <= 0:
        raise PlannerError(filter_name, "gpu_facts_memory_total_mib", f"must be > 0, got {total}")
    cap = str(compute_capability)
    parts = cap.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise PlannerError(filter_name, "gpu_facts_compute_capability", f"expected a string such as \"7.5\", got {compute_capability!r}")
    return {
        "index": 0,
        "name": name or f"GPU with {total} MiB",
        "uuid": None,
        "memory_total_mib": total,
        "memory_used_mib": None,
        "memory_free_mib": None,
        "compute_capability": cap,
        "driver_version": None,
    }


def tier_names(catalog: dict) -> list[str]:
    """Tier names, best quality first."""
    tiers = catalog["tiers"]
    return sorted(tiers, key=lambda n: (-int(tiers[n]["quality_rank"]), n))


def auto_tier_names(catalog: dict) -> list[str]:
    """The tiers ``tier=auto`` chooses among (the guide's tiers; ``auto: false`` ones are left out)."""
    return [name for name in tier_names(catalog) if catalog["tiers"][name].get("auto", True)]
