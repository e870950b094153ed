"""Run one of a role's own modules (roles/<role>/library) by Ansible itself: ad hoc, connection
local, the JSON callback. Shared by the module tests in this folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_module(role: str, name: str, args: dict, *flags: str) -> tuple[dict, str]:
    """The module's result and everything Ansible printed (stdout + stderr)."""
    # make test runs pytest from .venv, where ansible is installed: its absence is a broken setup
    assert shutil.which("ansible", path=str(BIN)), f"no ansible next to {sys.executable} (run through make test)"
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_LIBRARY=str(REPO / "roles" / role / "library"))
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", name, "-a", json.dumps(args), *flags],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    out = json.loads(proc.stdout)
    (result,) = [task["hosts"]["localhost"] for play in out["plays"] for task in play["tasks"]]
    return result, proc.stdout + proc.stderr
