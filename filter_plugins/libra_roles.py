"""Jinja filters of the roles and playbooks: thin wrappers over ``lib/libra_roles``.

Each filter hands plain data to a pure function and turns its ValueError into an
AnsibleFilterError naming the filter. Table tests: tests/roles/test_libra_roles.py.
"""
from __future__ import annotations

import os
import sys

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from libra_roles import inputs as _inputs  # noqa: E402
from libra_roles import memory as _memory  # noqa: E402
from libra_roles import rollout as _rollout  # noqa: E402
from libra_roles import stack as _stack  # noqa: E402
from libra_roles import verify as _verify  # noqa: E402
from libra_common import ansible_filter  # noqa: E402


_FILTERS = {
    # every role's tasks/validate.yml
    "libra_input_errors": _inputs.input_errors,
    # roles/host_memory
    "host_memory_capped_limit": _memory.capped_limit,
    # roles/vllm_stack
    "vllm_stack_instances_env": _stack.instances_env,
    "vllm_stack_service_urls": _stack.service_urls,
    "vllm_stack_stage_entries": _stack.stage_entries,
    "vllm_stack_install_entries": _stack.install_entries,
    "vllm_stack_missing_images": _stack.missing_images,
    "vllm_stack_replaced_files": _stack.replaced_files,
    "vllm_stack_backup_files": _stack.backup_files,
    "vllm_stack_env_changes": _stack.env_changes,
    "vllm_stack_mask": _stack.mask,
    # roles/vllm_verify
    "vllm_verify_pair_processes": _verify.pair_processes,
    "vllm_verify_process_checks": _verify.process_checks,
    "vllm_verify_smoke_check": _verify.smoke_check,
    "vllm_verify_http_bases": _verify.http_bases,
    "vllm_verify_http_results": _verify.http_results,
    # playbooks/rollout.yml
    "rollout_snapshot": _rollout.snapshot,
    "rollout_found_checksum": _rollout.found_checksum,
    "rollout_batch_gate": _rollout.batch_gate,
    "rollout_report_files": _rollout.report_files,
}


class FilterModule:
    """Filters of roles/* and playbooks/* (see lib/libra_roles)."""

    def filters(self):
        return {name: ansible_filter(func, (ValueError, KeyError, TypeError), name=name) for name, func in _FILTERS.items()}
