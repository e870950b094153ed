#!/usr/bin/env python3
"""Install what the test suite needs on a fresh machine (run as root by `make test-deps`).

1. Debian packages listed in ``apt-packages.txt`` beside this file: only the missing ones are
   installed, after one ``apt-get update``.
2. Every ``step_*.py`` beside this file, in name order, each run with this Python. A step
   installs one engine (its own venv, binary or cache) and is idempotent: it returns at once
   when its cached result is already in place.

Stdlib only: it runs before anything else is installed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wanted_packages(path: Path = HERE / "apt-packages.txt") -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def missing_packages(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        probe = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name],
            capture_output=True, text=True, check=False,
        )
        if "install ok installed" not in probe.stdout:
            missing.append(name)
    return missing


def main() -> int:
    missing = missing_packages(wanted_packages())
    if missing:
        print(f"test-deps: apt-get install {' '.join(missing)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env)
    for step in sorted(HERE.glob("step_*.py")):
        print(f"test-deps: {step.name}", flush=True)
        subprocess.run([sys.executable, str(step)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
