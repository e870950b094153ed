"""The nvidia-smi double's environment for tests/playbooks (helpers in playkit.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from playkit import DOUBLES


@pytest.fixture()
def double_env(tmp_path: Path) -> dict:
    """Environment of the nvidia-smi double (tests/doubles/bin/nvidia-smi) replaying one recording."""
    gpu_file = tmp_path / "gpu"
    gpu_file.write_text("rtx3060-12gb\n")
    return {"LIBRA_TEST_SHARE": str(DOUBLES), "LIBRA_TEST_GPU_FILE": str(gpu_file),
            "LIBRA_TEST_DOCKER_STATE": str(tmp_path / "docker-state.json")}
