"""Helpers shared by the fleet tests and bench/fleet.py: run playbooks/rollout.yml, parse the
PLAY RECAP, read the report."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # the Python running the tests (make test: .venv)
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


# --- chroot fleets (tests/hosts/hostctl.py) ---------------------------------------------------

APT_MIRROR = REPO / "tests" / "doubles" / "apt_mirror.py"
CHROOT_EXE = REPO / "tests" / "hosts" / "chroot_netns.py"
# Each test host has its own network namespace: every host publishes vLLM on the tiers' own
# ports (8000, 8001), and the apt mirror answers on each host's loopback (tests/hosts/hostctl.py).
MIRROR_URL = "http://127.0.0.1:18480"
# Stand-in images loaded into each host's engine (tests/hosts/images.py) and fast healthchecks.
STANDIN_VARS = {
    "vllm_stack_image": "libra-test/vllm-standin",
    "vllm_stack_image_tag": "test",
    "vllm_stack_prometheus_image": "libra-test/prometheus-standin:test",
    "vllm_stack_grafana_image": "libra-test/grafana-standin:test",
    "vllm_verify_cuda_image": "libra-test/cuda-standin:test",
    # Each check is a `docker exec` of Python in the container: at 2 s, the fleet's dozen
    # containers meant six of those a second for the whole module.
    "vllm_stack_healthcheck_interval": "5s",
    "vllm_stack_healthcheck_timeout": "5s",
    "vllm_stack_healthcheck_retries": 3,
    # The stand-in answers /health within a second or two of its start; a failing one is then
    # unhealthy after 10 s + 3 x 5 s instead of the production default's minutes.
    "vllm_stack_healthcheck_start_period": "10s",
    "vllm_stack_wait_timeout": 90,
    # The rollback's probe of the previous stack: 12 x 2 s (default 24 x 5 s) is ample here.
    "rollout_rollback_health_retries": 12,
    "rollout_rollback_health_delay": 2,
}


# Per-tier instance names of catalog/tiers.yml; the fleet tests vary the ports per host (each
# host has its own network namespace, so this is not needed against clashes; it keeps the
# override wiring tested).
PORT_OVERRIDES = ("{{ {'dual': {'instances': {'small': {'port': fleet_port}, 'large': {'port': fleet_port + 1}}},"
                  " 'single': {'instances': {'small': {'port': fleet_port}}},"
                  " 'int2': {'instances': {'int2': {'port': fleet_port}}},"
                  " 'ultralight': {'instances': {'ultralight': {'port': fleet_port}}}}"
                  " | combine(fleet_change | default({}), recursive=true) }}")


def build_apt_mirror() -> str:
    """Build (once, cached) the apt mirror double; hostctl serves it inside each host."""
    subprocess.run([sys.executable, str(APT_MIRROR), "build"], capture_output=True, text=True, check=True)
    return MIRROR_URL


def knob_dir(root) -> Path:
    """Where the vLLM stand-in reads its failure knobs: the host's Hugging Face cache, mounted
    into its containers (tests/hosts/images.py)."""
    return Path(root) / "opt/libra/hf-cache/libra-test"


def seed_hf_cache(roots) -> None:
    """Stands in for models already in the Hugging Face cache: the stand-in image has no HF CLI
    and nothing can be downloaded here, so the stage phase must find every model there and skip
    the download (the layout huggingface_hub documents: hub/models--org--name/snapshots/rev/)."""
    import yaml
    models = yaml.safe_load((REPO / "catalog" / "models.yml").read_text())["models"]
    for root in roots:
        for model in models:
            snap = Path(root) / "opt/libra/hf-cache/hub" / ("models--" + model.replace("/", "--")) / "snapshots/test"
            snap.mkdir(parents=True, exist_ok=True)
            (snap / "model.safetensors").write_bytes(b"")


def chroot_inventory(hosts: dict[str, dict], mirror_url: str) -> dict:
    """hosts: name -> host vars (at least ansible_host = the chroot root and fleet_port)."""
    return {"all": {
        "vars": {
            "ansible_connection": "community.general.chroot",
            "ansible_chroot_exe": str(CHROOT_EXE),
            **STANDIN_VARS,
            "ansible_python_interpreter": "/usr/bin/python3",
            "tier": "auto",
            "vllm_stack_start": True,
            "host_memory_swap_activate": False,
            # Each test host's swap file takes real disk in its overlay: a few MiB, not the tier's GiB.
            "host_memory_swap_mib": 16,
            "nvidia_toolkit_repo_url": mirror_url + "/stable/deb/$(ARCH)",
            "nvidia_toolkit_gpg_key_url": mirror_url + "/gpgkey",
            # The recordings come from machines whose drivers (510-580) predate what the pinned
            # image's CUDA needs; the driver gate has its own tests in vllm_verify's scenarios.
            "vllm_verify_min_driver": "510.0",
            "vllm_tier_overrides": PORT_OVERRIDES,
        },
        "children": {"vllm_hosts": {"hosts": hosts}},
    }}
