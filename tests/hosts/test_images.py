"""The stand-in images are for tests only: the roles' defaults name the official images, and the
test inventories select the stand-ins through the roles' image variables.

Official names: vLLM's OpenAI server image vllm/vllm-openai (docs.vllm.ai, "Using Docker"),
prom/prometheus and grafana/grafana on Docker Hub, NVIDIA's CUDA base images nvidia/cuda.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import images  # noqa: E402

STACK_DEFAULTS = yaml.safe_load((REPO / "roles/vllm_stack/defaults/main.yml").read_text())
ENGINE = yaml.safe_load((REPO / "catalog/engine.yml").read_text())


def test_role_defaults_name_the_official_images():
    assert ENGINE["image"].startswith("vllm/vllm-openai:v")
    assert ENGINE["toolkit_smoke_image"].startswith("nvidia/cuda:")
    assert STACK_DEFAULTS["vllm_stack_prometheus_image"].startswith("prom/prometheus:v")
    assert STACK_DEFAULTS["vllm_stack_grafana_image"].startswith("grafana/grafana:")
    # no public ai-worker image exists: off by default and no made-up default name
    assert STACK_DEFAULTS["vllm_stack_worker_enabled"] is False
    assert STACK_DEFAULTS["vllm_stack_worker_image"] == ""
    for value in (ENGINE["image"], ENGINE["toolkit_smoke_image"], STACK_DEFAULTS["vllm_stack_prometheus_image"],
                  STACK_DEFAULTS["vllm_stack_grafana_image"]):
        assert "libra-test" not in value


def test_test_inventories_select_the_standins_that_images_py_builds():
    built = set(images.refs())
    for scenario in ("tier-lite", "tier-dual"):
        conf = yaml.safe_load((REPO / "tests/molecule" / scenario / "molecule.yml").read_text())
        gv = conf["provisioner"]["inventory"]["group_vars"]["all"]
        selected = {f"{gv['vllm_stack_image']}:{gv['vllm_stack_image_tag']}", gv["vllm_stack_worker_image"],
                    gv["vllm_stack_prometheus_image"], gv["vllm_stack_grafana_image"], gv["vllm_verify_cuda_image"]}
        assert selected <= built, (scenario, selected - built)
