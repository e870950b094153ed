"""Shared fixtures for the planner unit tests.

GPU figures are what ``nvidia-smi --query-gpu=memory.total,compute_cap`` reports for each card
(memory.total in MiB); compute capabilities from NVIDIA's CUDA GPU list
(https://developer.nvidia.com/cuda-gpus).
"""

from __future__ import annotations

import pytest

RTX_2070 = {"name": "NVIDIA GeForce RTX 2070", "memory_total_mib": 8192, "compute_capability": "7.5"}
RTX_3060 = {"name": "NVIDIA GeForce RTX 3060", "memory_total_mib": 12288, "compute_capability": "8.6"}
RTX_4090 = {"name": "NVIDIA GeForce RTX 4090", "memory_total_mib": 24564, "compute_capability": "8.9"}


@pytest.fixture
def rtx2070() -> dict:
    return dict(RTX_2070)


@pytest.fixture
def rtx3060() -> dict:
    return dict(RTX_3060)


@pytest.fixture
def rtx4090() -> dict:
    return dict(RTX_4090)
