"""Pure functions behind the roles' and playbooks' filters (filter_plugins/libra_roles.py).

Everything here takes and returns plain Python data, so that tests/roles/ can table-test it
without Ansible. One module per consumer: ``stack`` (roles/vllm_stack), ``verify``
(roles/vllm_verify), ``memory`` (roles/host_memory), ``inputs`` (every role's validate entry
point), ``rollout`` (playbooks/rollout.yml).
"""
