#!/usr/bin/env python3
"""A second venv with the oldest ansible-core this project supports (README, "Supported
ansible-core"), for tests/compat: the planner filters and playbooks run under it as they do
under the newest one in .venv.

Cached in /var/cache/libra-tests/ansible-core-<version>; idempotent (a complete venv carries a
`.complete` marker written last). Stdlib only.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

# ansible-core 2.17 is the oldest release line still installing on Python 3.11 that the roles'
# meta/main.yml min_ansible_version names. The collections come from the Ansible 10 package,
# the one built on ansible-core 2.17 (docs.ansible.com/ansible/latest/reference_appendices/release_and_maintenance.html),
# from PyPI like everything else (Galaxy is not reachable from CI).
VERSION = "2.17.14"
PACKAGES = [f"ansible-core=={VERSION}", "ansible==10.7.0", "pyyaml==6.0.3", "jsonschema==4.26.0", "jinja2==3.1.6"]
CACHE = Path("/var/cache/libra-tests") / f"ansible-core-{VERSION}"


def main() -> int:
    marker = CACHE / ".complete"
    if marker.exists():
        return 0
    tmp = CACHE.with_name(CACHE.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
    pip = tmp / "bin" / "pip"
    subprocess.run([str(pip), "install", "--disable-pip-version-check", "-q", *PACKAGES], check=True)
    # venv scripts carry their absolute path in the shebang: point them at the final location.
    shutil.rmtree(CACHE, ignore_errors=True)
    tmp.rename(CACHE)
    for script in (CACHE / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            data = script.read_bytes()
            if data.startswith(b"#!") and str(tmp).encode() in data[:200]:
                script.write_bytes(data.replace(str(tmp).encode(), str(CACHE).encode(), 1))
    (CACHE / "pyvenv.cfg").write_text((CACHE / "pyvenv.cfg").read_text().replace(str(tmp), str(CACHE)))
    marker.write_text(VERSION + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
