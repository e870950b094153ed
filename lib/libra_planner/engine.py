"""vLLM releases: the facts of one release (catalog/engine.yml) and the image build a driver runs.

``release_facts(version)`` returns the flat engine facts the memory accounting reads for one
release (the catalog's shared facts overlaid with the release's own); ``engine_build(catalog,
version, driver)`` picks the image build of a release that a host's NVIDIA driver can run, or
refuses naming the driver it needs.
"""

from __future__ import annotations

from typing import Any

from .errors import PlannerError
from .models import load_engine_catalog

_SHARED_KEYS = ("cuda_context_gib", "block_size", "non_torch_gib")


def _version_tuple(text: Any, filter_name: str, field: str) -> tuple[int, ...]:
    """``"570.124.06"`` -> ``(570, 124, 6)``; refuses anything that is not dotted numbers."""
    parts = str(text).strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise PlannerError(filter_name, field, f"must be a dotted version such as \"580.65.06\" (got {text!r})")
    return tuple(int(p) for p in parts)


def releases(catalog: dict | None = None) -> dict:
    return (catalog or load_engine_catalog())["releases"]


def default_release(catalog: dict | None = None) -> str:
    return str((catalog or load_engine_catalog())["default_release"])


def resolve_version(version: Any, filter_name: str, catalog: dict | None = None) -> str:
    """The release an instance runs: its ``vllm_version`` or the catalog's default pin."""
    catalog = catalog or load_engine_catalog()
    if version in (None, ""):
        return default_release(catalog)
    text = str(version).strip().lstrip("v")
    known = releases(catalog)
    if text not in known:
        raise PlannerError(
            filter_name,
            "vllm_version",
            f"vLLM release {version!r} is not in catalog/engine.yml; known releases: {', '.join(known)}",
        )
    return text


def release_facts(version: Any = None, filter_name: str = "vllm_memory_plan", catalog: dict | None = None) -> dict:
    """Flat facts of one release: shared facts overlaid with ``releases[version]`` (+ ``vllm_version``)."""
    catalog = catalog or load_engine_catalog()
    name = resolve_version(version, filter_name, catalog)
    facts = {k: catalog[k] for k in _SHARED_KEYS if k in catalog}
    facts.update(catalog["releases"][name])
    facts["vllm_version"] = name
    return facts


def serving_defaults(facts: dict, total_bytes: int, gpu_name: str | None = None) -> dict:
    """``max_num_batched_tokens`` and ``max_num_seqs`` the OpenAI server picks on this GPU.

    Rows of ``defaults_by_gpu`` are tried in order; ``not_a100`` rows skip GPUs named A100
    (vLLM keeps the small defaults there, vllm-project/vllm#17885).
    """
    name = (gpu_name or "").lower()
    for row in facts["defaults_by_gpu"]:
        if total_bytes < int(row["min_gib"]) * (1 << 30):
            continue
        if row.get("not_a100") and "a100" in name:
            continue
        return {"max_num_batched_tokens": int(row["max_num_batched_tokens"]), "max_num_seqs": int(row["max_num_seqs"])}
    raise ValueError("catalog/engine.yml: defaults_by_gpu needs a row with min_gib 0")


def engine_build(catalog: dict | None, version: Any, driver_version: Any, filter_name: str = "vllm_engine_build") -> dict:
    """The first image build of ``version`` whose minimum driver ``driver_version`` meets.

    Returns ``{vllm_version, image, cuda, min_driver_version}``. A driver below every build's
    floor is refused, naming the lowest driver that would run the release.
    """
    catalog = catalog or load_engine_catalog()
    name = resolve_version(version, filter_name, catalog)
    have = _version_tuple(driver_version, filter_name, "driver_version")
    builds = catalog["releases"][name]["builds"]
    for build in builds:
        if have >= _version_tuple(build["min_driver_version"], filter_name, "min_driver_version"):
            return {
                "vllm_version": name,
                "image": build["image"],
                "cuda": str(build["cuda"]),
                "min_driver_version": str(build["min_driver_version"]),
            }
    lowest = min(builds, key=lambda b: _version_tuple(b["min_driver_version"], filter_name, "min_driver_version"))
    options = "; ".join(f"{b['image']} (CUDA {b['cuda']}) needs >= {b['min_driver_version']}" for b in builds)
    raise PlannerError(
        filter_name,
        "driver_version",
        f"NVIDIA driver {driver_version} is too old for every image build of vLLM {name}: {options}. "
        f"Upgrade the driver to >= {lowest['min_driver_version']} or pin an older vllm_version",
    )
