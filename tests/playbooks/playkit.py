"""Helpers to run site.yml / rollout.yml against local-connection hosts (fast: no chroot, no Docker).

A module of its own (not conftest.py), so tests in other folders can import it by a unique name.

``bin_dir`` points a run at another ansible-core venv's bin/ (tests/compat uses it).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOUBLES = REPO / "tests" / "doubles"
BIN = Path(sys.executable).parent


@dataclass
class Result:
    rc: int
    out: str


def run_playbook(playbook: str, inventory: Path, *args: str, env: dict | None = None, timeout: int = 600,
                 bin_dir: Path = BIN) -> Result:
    full = dict(os.environ)
    full.update({"PATH": f"{bin_dir}:{full.get('PATH', '')}", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
                 "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml"})
    full.update(env or {})
    proc = subprocess.run([str(bin_dir / "ansible-playbook"), playbook, "-i", str(inventory), *args], cwd=REPO, env=full,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    return Result(proc.returncode, proc.stdout)


def local_inventory(path: Path, hosts: dict[str, dict], group: str | None = "vllm_hosts", extra: dict | None = None) -> Path:
    """An inventory of local-connection hosts, in ``group`` (or directly in all when None)."""
    base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hv = {h: {**base, **v} for h, v in hosts.items()}
    doc = {"all": {"children": {group: {"hosts": hv}}}} if group else {"all": {"hosts": hv}}
    if extra:
        doc["all"]["children"].update(extra)
    path.write_text(yaml.safe_dump(doc))
    return path
