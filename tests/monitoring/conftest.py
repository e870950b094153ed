"""Resolved tiers for the monitoring tests (planned in-process from GPU presets) and promtool."""

from __future__ import annotations

import shutil

import pytest

from libra_planner.tiers import gpu_from_preset, resolve_tier


@pytest.fixture(scope="session")
def dual_tier() -> dict:
    """Two instances on a 24 GB RTX 4090 (fits)."""
    tier = resolve_tier(None, "dual", gpu_from_preset("rtx4090"), {}, {}, "vllm_tier_resolve")
    assert tier["fits"] and len(tier["instances"]) == 2
    return tier


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus, tests/deps/apt-packages.txt; run make test-deps)")
    return path
