#!/usr/bin/python
"""Which planned published ports another program holds, in one module run.

The role probed each port with ``wait_for`` (state stopped, one second: a port the running stack
holds cost that second every time) and asked ``docker ps`` per open port whether a container of
this stack publishes it. This module connects to every port (a refused or accepted connection
returns at once) and asks ``docker ps`` only about the open ones, with the same filters. It
changes nothing.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: vllm_stack_ports
short_description: Find the planned ports that a program other than the stack holds
description:
  - Read-only. Connects to each of O(ports) on O(address) (TCP). For each port that accepts the
    connection, runs C(docker ps -q --filter label=com.docker.compose.project=PROJECT --filter
    publish=PORT); a port that no container of O(project) publishes is returned in C(taken).
options:
  address:
    description: Address the ports are probed on.
    type: str
    required: true
  ports:
    description: Host ports the stack publishes.
    type: list
    elements: int
    required: true
  project:
    description: Compose project name of the stack.
    type: str
    required: true
  timeout:
    description: Seconds each connection may take.
    type: float
    default: 1.0
author: libra
"""

EXAMPLES = r"""
- name: Find the planned ports another program holds
  vllm_stack_ports:
    address: 127.0.0.1
    ports: [8000, 8001]
    project: libra
  register: ports
"""

RETURN = r"""
open: {description: The ports of O(ports) that accepted a connection., type: list, elements: int, returned: always}
taken: {description: The open ports that no container of O(project) publishes., type: list, elements: int, returned: always}
"""

import socket

from ansible.module_utils.basic import AnsibleModule


def is_open(address: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "address": {"type": "str", "required": True},
            "ports": {"type": "list", "elements": "int", "required": True},
            "project": {"type": "str", "required": True},
            "timeout": {"type": "float", "default": 1.0},
        },
        supports_check_mode=True,
    )
    params = module.params
    open_ports = [port for port in dict.fromkeys(params["ports"]) if is_open(params["address"], port, params["timeout"])]
    taken = []
    if open_ports:
        docker = module.get_bin_path("docker", required=True)
    for port in open_ports:
        rc, out, err = module.run_command([docker, "ps", "-q", "--filter", f"label=com.docker.compose.project={params['project']}",
                                           "--filter", f"publish={port}"])
        if rc != 0:
            module.fail_json(msg=f"docker ps failed while looking for the owner of port {port}: {err.strip()}", rc=rc)
        if not out.strip():
            taken.append(port)
    module.exit_json(changed=False, open=open_ports, taken=taken)


if __name__ == "__main__":
    main()
