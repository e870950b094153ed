"""Ansible filters for planning vLLM on NVIDIA GPUs: thin wrappers over ``libra_planner``.

Every filter turns a planner error into ``AnsibleFilterError`` with the same message, which names
the filter and the field. See docs/architecture.md for the filter list and the data shapes.
"""

from __future__ import annotations

import os
import sys

# The pure planner lives in lib/ (outside filter_plugins/, which Ansible scans for plugins).
_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from libra_common import ansible_filter, lib_module  # noqa: E402


def _planner(name: str):
    """A module of libra_planner, imported when a filter first runs (see lib/libra_common.py)."""
    return lib_module(f"libra_planner.{name}")


def _wrap(func):
    return ansible_filter(func, "libra_planner.errors:PlannerError")


def vllm_memory_plan(instance, gpu):
    """``instance | vllm_memory_plan(gpu)``: one instance alone on a GPU (DESIGN.md contract 4)."""
    return _planner("memory").plan_instance(instance, gpu, "vllm_memory_plan")


def vllm_multi_plan(instances, gpu):
    """``instances | vllm_multi_plan(gpu)``: instances started in order on one GPU."""
    return _planner("multi").plan_instances(instances, gpu, "vllm_multi_plan")


def vllm_solve_utilization(instances, gpu, min_concurrency=1, margin_gib=0.25):
    """``instances | vllm_solve_utilization(gpu, min_concurrency, margin_gib)``: a utilization per instance."""
    return _planner("multi").solve_utilization(instances, gpu, int(min_concurrency), float(margin_gib), "vllm_solve_utilization")


def vllm_tier_resolve(catalog, tier, gpu, models=None, overrides=None):
    """``catalog | vllm_tier_resolve(tier, gpu, models=vllm_models, overrides=vllm_tier_overrides)``.

    ``catalog`` may be the loaded catalog/tiers.yml, or ``none``/empty to read it from the project;
    ``tier`` may be ``auto``, or ``all`` for a list of every tier (reports).
    """
    catalog, models, overrides = catalog or None, models or {}, overrides or {}
    if tier == "all":
        return _planner("tiers").resolve_all(catalog, gpu, models, overrides, "vllm_tier_resolve")
    return _planner("tiers").resolve_tier(catalog, tier, gpu, models, overrides, "vllm_tier_resolve")


def vllm_validate(data, schema_name):
    """``data | vllm_validate('inventory')``: returns data, or fails naming the field and the allowed values."""
    return _planner("validate").validate(data, schema_name, "vllm_validate")


def vllm_parse_nvidia_smi(output):
    """``nvidia_smi.stdout | vllm_parse_nvidia_smi``: GPU dicts from the --query-gpu CSV."""
    return _planner("nvidia_smi").parse_gpus(output, "vllm_parse_nvidia_smi")


def vllm_parse_compute_apps(output):
    """``apps.stdout | vllm_parse_compute_apps``: processes from --query-compute-apps."""
    return _planner("nvidia_smi").parse_compute_apps(output, "vllm_parse_compute_apps")


def vllm_gpu_preset(name, memory_total_mib=None, compute_capability=None):
    """``'rtx2070' | vllm_gpu_preset`` or ``none | vllm_gpu_preset(12288, '8.6')``: a GPU dict without nvidia-smi."""
    if name:
        return _planner("tiers").gpu_from_preset(name, "vllm_gpu_preset")
    return _planner("tiers").gpu_from_memory(memory_total_mib, compute_capability, filter_name="vllm_gpu_preset")


def vllm_gpu_preset_names(_=None):
    """``none | vllm_gpu_preset_names``: the GPU preset names of catalog/gpus.yml, smallest card first."""
    return [name for name, _gpu in sorted(_planner("tiers").load_gpu_presets().items(), key=lambda item: item[1]["memory_total_mib"])]


def vllm_tier_names(_=None):
    """``none | vllm_tier_names``: the tier names of catalog/tiers.yml (without auto and all)."""
    tiers = _planner("tiers")
    return list(tiers.tier_names(tiers.load_tier_catalog()))


def vllm_plan_table(resolved, summary=False):
    """``resolved | vllm_plan_table``: text lines of the budget table for one or more resolved tiers."""
    return _planner("tables").plan_table(resolved, bool(summary))


def vllm_max_table(models=None, overrides=None):
    """``vllm_models | vllm_max_table(vllm_tier_overrides)``: what tier max runs on every GPU preset, as text lines."""
    rows = _planner("tiers").max_by_preset(models or {}, overrides or {}, filter_name="vllm_max_table")
    return _planner("tables").max_table(rows)


def vllm_engine_build(engine_catalog, version=None, driver_version=None):
    """``engine_catalog | vllm_engine_build(version, driver_version)``: the image build of a vLLM release the driver runs.

    ``engine_catalog`` may be the loaded catalog/engine.yml or ``none`` to read the project's;
    ``version`` ``none`` means the catalog's default release. Refuses naming the driver needed.
    """
    return _planner("engine").engine_build(engine_catalog or None, version, driver_version, "vllm_engine_build")


def vllm_gpu_for_plan(gpu, apps=None, own_process_regex=None):
    """``gpu | vllm_gpu_for_plan(apps)``: the GPU with memory held by running vLLM processes counted as free."""
    smi = _planner("nvidia_smi")
    return smi.gpu_for_plan(gpu, apps or [], own_process_regex or smi.OWN_PROCESS_REGEX, "vllm_gpu_for_plan")


def vllm_select_gpu(gpus, index=0):
    """``gpus | vllm_select_gpu(index)``: the GPU with that nvidia-smi index; an error lists the valid ones."""
    return _planner("nvidia_smi").select_gpu(gpus, index, "vllm_select_gpu")


class FilterModule:
    """vLLM GPU memory planning filters."""

    def filters(self):
        return {
            func.__name__: _wrap(func)
            for func in (
                vllm_memory_plan,
                vllm_multi_plan,
                vllm_solve_utilization,
                vllm_tier_resolve,
                vllm_validate,
                vllm_parse_nvidia_smi,
                vllm_parse_compute_apps,
                vllm_gpu_preset,
                vllm_gpu_preset_names,
                vllm_tier_names,
                vllm_select_gpu,
                vllm_plan_table,
                vllm_max_table,
                vllm_engine_build,
                vllm_gpu_for_plan,
            )
        }
