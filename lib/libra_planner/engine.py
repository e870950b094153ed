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


def normalize_version(version: Any, filter_name: str, catalog: dict | None = None) -> str:
    """``"v0.24"`` -> ``"0.24.0"``; unset -> the catalog's default pin; anything else is refused."""
    catalog = catalog or load_engine_catalog()
    if version in (None, ""):
        return default_release(catalog)
    text = str(version).strip().lstrip("v")
    parts = text.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise PlannerError(
            filter_name,
            "vllm_version",
            f"must be a vLLM release such as \"0.32.0\" (got {version!r}); catalog/engine.yml lists {', '.join(releases(catalog))}",
        )
    return ".".join(parts + ["0"] * (3 - len(parts)))


def _era(version: str, filter_name: str, catalog: dict) -> dict:
    """The ``eras`` entry of an unlisted release: the last one that starts at or before it."""
    wanted = _version_tuple(version, filter_name, "vllm_version")
    return [e for e in catalog["eras"] if _version_tuple(e["from"], filter_name, "eras") <= wanted][-1]


def resolve_version(version: Any, filter_name: str, catalog: dict | None = None) -> str:
    """The listed release an instance runs: exactly, or (for planning only) the one of its era."""
    catalog = catalog or load_engine_catalog()
    text = normalize_version(version, filter_name, catalog)
    if text in releases(catalog):
        return text
    return str(_era(text, filter_name, catalog)["facts_from"])


def release_facts(version: Any = None, filter_name: str = "vllm_memory_plan", catalog: dict | None = None) -> dict:
    """Flat facts of one release: shared facts overlaid with the release's own.

    ``vllm_version`` is the release asked for; ``vllm_facts_from`` what plans it: the release
    itself when listed, else its era (``eras``): the listed release the era names, overlaid
    with the era's own ``facts``, and then named ``"era <from>"``.
    """
    catalog = catalog or load_engine_catalog()
    text = normalize_version(version, filter_name, catalog)
    era = None if text in releases(catalog) else _era(text, filter_name, catalog)
    name = text if era is None else str(era["facts_from"])
    facts = {k: catalog[k] for k in _SHARED_KEYS if k in catalog}
    facts.update(catalog["releases"][name])
    facts["vllm_version"] = text
    facts["vllm_facts_from"] = name
    if era is not None and era.get("facts"):
        facts.update(era["facts"])
        facts["vllm_facts_from"] = f"era {era['from']}"
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
    name = normalize_version(version, filter_name, catalog)
    if name not in releases(catalog):
        raise PlannerError(
            filter_name,
            "vllm_version",
            f"vLLM release {version!r} is not in catalog/engine.yml, so its image builds and driver floors are not known; "
            f"releases with images: {', '.join(releases(catalog))}",
        )
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
