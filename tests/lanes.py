#!/usr/bin/env python3
"""Run the whole test suite as two pytest processes side by side (what `make pytest` runs).

    python tests/lanes.py [pytest options...]

Most of the suite is Ansible driving real hosts, and one ansible-playbook run keeps about one
core busy, so on a 2-core machine two lanes finish in a little over half the time of one. The
lanes are split by folder on measured durations (README, "Tests"):

    engines   the shared render (tests/render, tests/vllm: every tier on every GPU preset,
              the real vLLM server), tests/monitoring, Molecule tier-lite and tier-dual
    rest      everything else: the fleet, the other Molecule scenarios, unit, roles, ...

The `rest` lane is `pytest tests` minus what `engines` runs, so a new test file lands in a lane
without being listed here. The two runs never collide: each pytest run keeps its hosts in a
state folder of its own and picks free ports (tests/conftest.py), Molecule scenarios have their
own hosts, and the builds both may need (the Debian base, the images) are made under a lock.

Each lane writes its log to a file while it runs; the logs are printed, one after the other,
when both have finished, followed by one line per lane. The exit status is the first non-zero
status of a lane (0 when both pass).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MOLECULE = "tests/molecule/test_molecule.py::test_molecule_scenario"
# Tests (folders, files or test ids, relative to the repository) of the `engines` lane.
ENGINES = [
    "tests/render",
    "tests/vllm",
    "tests/monitoring",
    f"{MOLECULE}[tier-lite]",
    f"{MOLECULE}[tier-dual]",
]


def lane_args(engines: list[str]) -> dict[str, list[str]]:
    """pytest arguments of each lane: `engines` runs the list, `rest` the suite without it."""
    rest = ["tests"]
    for item in engines:
        rest.append(f"--deselect={item}" if "::" in item else f"--ignore={item}")
    return {"engines": list(engines), "rest": rest}


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", *argv]
    logs = Path(tempfile.mkdtemp(prefix="libra-lanes-"))
    procs = {}
    for name, args in lane_args(ENGINES).items():
        log = logs / f"{name}.log"
        with open(log, "wb") as handle:
            procs[name] = (subprocess.Popen([*pytest, *args], cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL), log, time.monotonic())
        print(f"lane {name}: pytest {' '.join(args)} (log: {log})", flush=True)
    results = {}
    for name, (proc, log, started) in procs.items():
        results[name] = (proc.wait(), time.monotonic() - started)
    for name, (_proc, log, _started) in procs.items():
        print(f"\n{'=' * 30} lane {name} {'=' * 30}", flush=True)
        sys.stdout.write(log.read_text(errors="replace"))
    print()
    for name, (code, seconds) in results.items():
        print(f"lane {name}: exit {code} in {seconds:.0f} s", flush=True)
    return next((code for code, _ in results.values() if code != 0), 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
