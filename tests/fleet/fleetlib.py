"""Helpers shared by the fleet tests and bench/fleet.py: run playbooks/rollout.yml, parse the
PLAY RECAP, read the report."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() else "ansible-playbook"

# "h1    : ok=29   changed=3    unreachable=0    failed=0    skipped=13   rescued=0    ignored=0"
_RECAP = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


@dataclass
class Run:
    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]]


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    seen = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            seen = True
            continue
        if seen:
            m = _RECAP.match(line.strip())
            if m:
                recap[m.group(1)] = {k: int(v) for k, v in (kv.split("=") for kv in m.group(2).split())}
    return recap


def run_playbook(playbook: str | Path, inventory: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: int = 1200) -> Run:
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), *args]
    full_env = dict(os.environ)
    full_env.update({"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"})
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, check=False)
    return Run(proc.returncode, proc.stdout, time.monotonic() - started, parse_recap(proc.stdout))


def read_report(report_dir: Path, name: str = "rollout") -> tuple[dict, str]:
    report = json.loads((report_dir / f"{name}.json").read_text())
    markdown = (report_dir / f"{name}.md").read_text()
    return report, markdown


def results(report: dict) -> dict[str, str]:
    return {rec["host"]: rec["result"] for rec in report["hosts"]}


def tail(run: Run, lines: int = 80) -> str:
    return "\n".join(run.output.splitlines()[-lines:])
