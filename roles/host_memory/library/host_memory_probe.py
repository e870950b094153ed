#!/usr/bin/python
"""Everything host_memory reads on the host, in one module run.

The role read the host's RAM, looked for the commands it runs, the swap file's directory, the
swap file, the active swap areas and the swap signature: six module runs (a new Python process
on the host each). This module reads them all at once and changes nothing.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: host_memory_probe
short_description: Read the host's RAM, swap state and the commands host_memory needs
description:
  - Read-only. Returns C(/proc/meminfo), the commands of O(commands) that are not on the
    module's PATH, whether the swap file's directory exists, the swap file's size, the active
    swap areas of C(/proc/swaps) and the swap signature of the swap file.
  - The swap signature C(SWAPSPACE2) sits in the last 10 bytes of the first page (4096 bytes on
    x86_64 and arm64), as mkswap(8) writes it (util-linux libblkid/src/superblocks/swap.c).
options:
  swap_file:
    description: Absolute path of the swap file.
    type: path
    required: true
  commands:
    description: Commands looked up on PATH, as C(command -v) would.
    type: list
    elements: str
    default: []
  read_swaps:
    description: Whether to read C(/proc/swaps) (the active swap areas).
    type: bool
    default: true
author: libra
"""

EXAMPLES = r"""
- name: Read the host's memory and swap state
  host_memory_probe:
    swap_file: /libra.swap
    commands: [mkswap, swapon]
  register: probe
"""

RETURN = r"""
meminfo: {description: The content of /proc/meminfo., type: str, returned: always}
missing_commands: {description: The commands of O(commands) not found on PATH., type: list, elements: str, returned: always}
swap_dir_isdir: {description: Whether the swap file's directory exists and is a directory., type: bool, returned: always}
swap_file: {description: "C(exists) and C(size) (bytes) of the swap file.", type: dict, returned: always}
active_swaps: {description: The file names of the active swap areas (empty unless O(read_swaps))., type: list, elements: str, returned: always}
signature: {description: The 10 bytes at offset 4086 of the swap file, as text (empty when it is shorter)., type: str, returned: always}
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

SIGNATURE_OFFSET = 4096 - 10


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def active_swaps(text: str) -> list[str]:
    """File names of /proc/swaps (first column; the first line is the header)."""
    return [line.split()[0] for line in text.splitlines()[1:] if line.split()]


def signature(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(SIGNATURE_OFFSET)
            return handle.read(10).decode("ascii", errors="replace")
    except OSError:
        return ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "swap_file": {"type": "path", "required": True},
            "commands": {"type": "list", "elements": "str", "default": []},
            "read_swaps": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    swap_file = module.params["swap_file"]
    try:
        meminfo = read_text("/proc/meminfo")
        swaps = active_swaps(read_text("/proc/swaps")) if module.params["read_swaps"] else []
    except OSError as exc:
        module.fail_json(msg=f"cannot read {exc.filename}: {exc.strerror}")
    try:
        st = os.stat(swap_file)
        swap = {"exists": True, "size": st.st_size}
    except FileNotFoundError:
        swap = {"exists": False, "size": 0}
    module.exit_json(
        changed=False,
        meminfo=meminfo,
        missing_commands=[c for c in module.params["commands"] if shutil.which(c) is None],
        swap_dir_isdir=os.path.isdir(os.path.dirname(swap_file) or "/"),
        swap_file=swap,
        active_swaps=swaps,
        signature=signature(swap_file) if swap["exists"] else "",
    )


if __name__ == "__main__":
    main()
