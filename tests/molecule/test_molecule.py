"""Runs every Molecule scenario under tests/molecule (one pytest case per scenario).

Each case is `molecule test -s NAME` run from tests/ with the virtualenv's bin first on PATH,
so `pytest tests` (what `make test` runs) covers the scenarios. Scenarios use the shared
create/destroy playbooks in tests/molecule/shared (Debian chroots from tests/hosts/hostctl.py).
Skipped, with the reason, only where chroot hosts cannot exist: not root, no overlayfs, no
debootstrap.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

MOLECULE_DIR = Path(__file__).resolve().parent
TESTS_DIR = MOLECULE_DIR.parent
VENV_BIN = Path(sys.executable).parent
SCENARIOS = sorted(p.parent.name for p in MOLECULE_DIR.glob("*/molecule.yml") if p.parent.name != "shared")
TIMEOUT_S = int(os.environ.get("LIBRA_MOLECULE_TIMEOUT", "1200"))
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "chroot test hosts need root (mount, chroot)"
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        filesystems = ""
    if "overlay" not in filesystems:
        return "the kernel has no overlayfs (test hosts are overlay mounts)"
    if shutil.which("debootstrap") is None and not any(Path(os.environ.get("LIBRA_TEST_CACHE", "/var/cache/libra-tests")).glob("base-*/.libra-base-ok")):
        return "debootstrap is missing and no cached base rootfs exists (make test-deps)"
    return None


def test_scenarios_found():
    """The smoke scenario at least; a scenario directory without molecule.yml is not run."""
    assert "smoke" in SCENARIOS, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario):
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({"NO_COLOR": "1", "PY_COLORS": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    started = time.monotonic()
    try:
        proc = subprocess.run([str(VENV_BIN / "molecule"), "test", "-s", scenario], cwd=TESTS_DIR, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or ""
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        out = ANSI.sub("", raw)
        subprocess.run([str(VENV_BIN / "molecule"), "destroy", "-s", scenario], cwd=TESTS_DIR, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)
        pytest.fail(f"molecule test -s {scenario} timed out after {TIMEOUT_S}s; last output:\n"
                    + "\n".join(out.splitlines()[-150:]))
    elapsed = time.monotonic() - started
    out = ANSI.sub("", proc.stdout)
    sys.stdout.write(f"molecule test -s {scenario}: rc={proc.returncode} in {elapsed:.0f}s\n")
    assert proc.returncode == 0, (f"molecule test -s {scenario} failed (rc={proc.returncode}, {elapsed:.0f}s); "
                                  "last 150 lines:\n" + "\n".join(out.splitlines()[-150:]))
