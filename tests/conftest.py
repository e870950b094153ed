"""Settings shared by every test suite.

Each pytest run keeps its test hosts (tests/hosts/hostctl.py) in a state folder of its own,
/var/lib/libra-tests/runs/<pid>-<random>/hosts, unless LIBRA_TEST_STATE is set: the hosts'
network namespaces are named after that folder, so two test runs on one machine never share
(nor tear down) each other's hosts, even with the same host names. The folder is removed at the
end of the run when no host is left in it.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

_OWN_STATE: Path | None = None


def pytest_configure(config):
    global _OWN_STATE
    if "LIBRA_TEST_STATE" not in os.environ:
        run_dir = Path("/var/lib/libra-tests/runs") / f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        os.environ["LIBRA_TEST_STATE"] = str(run_dir / "hosts")
        _OWN_STATE = run_dir


def pytest_unconfigure(config):
    if _OWN_STATE is None or not _OWN_STATE.exists():
        return
    hosts = _OWN_STATE / "hosts"
    left = [p for p in hosts.iterdir() if p.is_dir()] if hosts.exists() else []
    if not left:
        shutil.rmtree(_OWN_STATE, ignore_errors=True)
