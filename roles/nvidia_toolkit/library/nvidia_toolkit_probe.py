#!/usr/bin/python
"""Everything nvidia_toolkit reads on the host, in one module run.

The role read the distribution (the ``setup`` module), looked for the docker command, read the
installed toolkit versions and read daemon.json: four module runs (a new Python process on the
host each, ``setup`` the heaviest). This module reads them all at once and changes nothing.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: nvidia_toolkit_probe
short_description: Read the distribution, docker, the toolkit's packages and daemon.json
description:
  - Read-only. Returns the distribution from C(/etc/os-release) (os-release(5)), the path of the
    C(docker) command, the installed version and status of each package of O(packages)
    (C(dpkg-query -W)), and the content of O(daemon_json).
  - The distribution is named as Ansible's C(ansible_distribution) names the two this role
    supports (C(ID=debian) is C(Debian), C(ID=ubuntu) is C(Ubuntu)); any other is named by its
    C(NAME). C(major_version) is C(VERSION_ID) up to its first dot (C(22.04) gives C(22)).
options:
  packages:
    description: Debian packages whose installed version and status are read.
    type: list
    elements: str
    default: []
  daemon_json:
    description: Path of Docker's daemon.json, read when it exists.
    type: path
    required: true
author: libra
"""

EXAMPLES = r"""
- name: Read what the toolkit role needs
  nvidia_toolkit_probe:
    packages: [nvidia-container-toolkit]
    daemon_json: /etc/docker/daemon.json
  register: probe
"""

RETURN = r"""
distribution: {description: Debian, Ubuntu or the os-release NAME (empty when there is no os-release)., type: str, returned: always}
version: {description: os-release VERSION_ID., type: str, returned: always}
major_version: {description: VERSION_ID up to its first dot., type: str, returned: always}
docker: {description: Path of the docker command on PATH (empty when missing)., type: str, returned: always}
packages: {description: "One line per installed package of O(packages): C(name=version status)., type: list, elements: str, returned: always}
daemon_json: {description: "C(exists) and C(content) of O(daemon_json).", type: dict, returned: always}
"""

import shlex
import shutil

from ansible.module_utils.basic import AnsibleModule

# os-release(5): /etc/os-release, else /usr/lib/os-release.
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
NAMES = {"debian": "Debian", "ubuntu": "Ubuntu"}


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines, values unquoted as a shell would (os-release(5))."""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value]
        fields[key] = words[0] if words else ""
    return fields


def distribution(fields: dict[str, str]) -> dict[str, str]:
    version = fields.get("VERSION_ID", "")
    name = NAMES.get(fields.get("ID", "").lower(), fields.get("NAME", ""))
    return {"distribution": name, "version": version, "major_version": version.split(".")[0]}


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "daemon_json": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    os_release = next((text for text in map(read, OS_RELEASE) if text is not None), "")
    lines: list[str] = []
    dpkg_query = shutil.which("dpkg-query")
    if dpkg_query and module.params["packages"]:
        # rc 1 when a package is unknown; the known ones are printed all the same
        _, out, _ = module.run_command([dpkg_query, "-W", "-f", "${Package}=${Version} ${db:Status-Status}\n",
                                        *module.params["packages"]])
        lines = [line for line in out.splitlines() if line.strip()]
    try:
        daemon = read(module.params["daemon_json"])
    except OSError as exc:
        module.fail_json(msg=f"cannot read {module.params['daemon_json']}: {exc.strerror}")
    module.exit_json(
        changed=False,
        docker=shutil.which("docker") or "",
        packages=lines,
        daemon_json={"exists": daemon is not None, "content": daemon or ""},
        **distribution(parse_os_release(os_release)),
    )


if __name__ == "__main__":
    main()
