"""tests/lanes.py splits the suite into two pytest runs: every test lands in exactly one lane."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import lanes  # noqa: E402


def _collected(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *args],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_every_test_runs_in_exactly_one_lane():
    whole = _collected("tests")
    by_lane = {name: _collected(*args) for name, args in lanes.lane_args(lanes.ENGINES).items()}
    assert all(by_lane.values()), {name: len(ids) for name, ids in by_lane.items()}
    assert sorted(by_lane["engines"] + by_lane["rest"]) == sorted(whole)
    assert not set(by_lane["engines"]) & set(by_lane["rest"])
    # the shared render's users stay together (one render per pytest run)
    assert not [t for t in by_lane["rest"] if t.startswith(("tests/render/", "tests/vllm/"))]
