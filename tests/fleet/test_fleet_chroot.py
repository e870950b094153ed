"""Fleet rollouts on real Debian hosts: eight chroots on overlayfs over one debootstrapped base
(tests/hosts/hostctl.py), each in its own network namespace with its own real Docker Engine
(stand-in images: the HTTP stand-in for vLLM), nvidia-smi replaying a real recording and the
local apt mirror for NVIDIA's repository. The real roles run; health gates are real HTTP calls
and the engine's own healthchecks.

One module-scoped fleet, scenarios in order:
  1. first rollout, tier=auto: each GPU host gets a stack sized for its card, the host without
     a GPU fails preflight on its own, the report lists all eight;
  2. re-run on the converged fleet: changed=0 for every host;
  3. --check --diff of a change on four of the hosts: prints it, changes no file on any host;
  4. a change (a vllm_tier_overrides knob for everyone, tier single -> auto on fleet-07) where
     fleet-07's new stack fails its health gate: it is rolled back to its previous stack, which
     answers /health again; the others get the change, fleet-08 after its dockerd restarted
     in the middle of the rollout (its drain hook);
  5. too many failures in one batch: the rollout stops there, the later hosts are `skipped`
     and unchanged.

fleet-07's failure knob (the vLLM stand-in's fail-health file in the host's Hugging Face cache,
tests/hosts/images.py) names the model of dual's second instance (the knob's lines are matched
against each vLLM container's command line): the engine's healthcheck fails only for the new
(dual) stack, and the previous (single) stack that the rollback restores has no such container
and stays healthy.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from fleetlib import (REPO, build_apt_mirror, chroot_inventory, knob_dir, read_report, results, run_playbook,
                      seed_hf_cache, tail)

sys.path.insert(0, str(REPO / "tests" / "hosts"))
import hostctl  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "rollout.yml"
PREFIX = "rollout--"
# name: (nvidia-smi recording or None, host vars). Recordings: tests/doubles/recordings/nvidia-smi.
FLEET = {
    "fleet-01": ("rtx3060-12gb", {}),
    "fleet-02": ("rtx2070-8gb", {}),
    "fleet-03": ("rtx4090-24gb", {}),
    "fleet-04": ("t4-16gb", {}),
    "fleet-05": (None, {}),
    "fleet-06": ("multi-2080ti22gb-titanrtx", {"gpu_facts_index": 1}),
    "fleet-07": ("rtx4090-24gb", {"tier": "{{ 'auto' if fleet_change | default({}) else 'single' }}"}),
    # fleet-08's drain hook restarts its dockerd right before its cut-over, in the middle of the
    # rollout (its running containers stop and come back by their restart policy).
    "fleet-08": ("rtx2070-8gb", {"rollout_drain_hook": str(Path(__file__).resolve().parent / "hooks" / "restart-dockerd.yml")}),
}
RESTART_HOST = "fleet-08"
NO_GPU = "fleet-05"
ROLLBACK_HOST = "fleet-07"
GPU_HOSTS = [h for h in FLEET if h != NO_GPU]
CHANGE = {"fleet_change": {t: {"max_num_seqs": 8} for t in ("dual", "single", "ultralight", "int2")}}
# fleet-07's new (dual) stack fails only on its second instance: the model of dual's "large" slot.
LARGE_MODEL = yaml.safe_load((REPO / "catalog" / "tiers.yml").read_text())["models"]["large"]
SERIAL = ["-e", json.dumps({"rollout_serial": [1, 2, "100%"], "rollout_max_fail_percentage": 25})]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, mount, chroot)"
    if shutil.which("debootstrap") is None:
        return "needs debootstrap (make test-deps)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "needs overlayfs in the kernel"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def _port(host: str) -> int:
    return 18300 + 10 * int(host.split("-")[1])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet")
    mirror_url = build_apt_mirror()
    roots = {}
    try:
        hostctl.down_many([PREFIX + name for name in FLEET])  # clean hosts even after an interrupted run
        # side by side; the host without a GPU stops in preflight, before anything calls Docker
        made = hostctl.up_many([{"name": PREFIX + name, "gpu": gpu, "engine": gpu is not None} for name, (gpu, _) in FLEET.items()])
        roots.update({name: made[PREFIX + name] for name in FLEET})
        seed_hf_cache(roots.values())
        knob_dir(roots[ROLLBACK_HOST]).mkdir(parents=True, exist_ok=True)
        (knob_dir(roots[ROLLBACK_HOST]) / "fail-health").write_text(LARGE_MODEL + "\n")
        inventory = chroot_inventory({name: {"ansible_host": str(roots[name]), "fleet_port": _port(name), **hostvars}
                                      for name, (_, hostvars) in FLEET.items()}, mirror_url)
        inv = work / "hosts.yml"
        inv.write_text(yaml.safe_dump(inventory, sort_keys=False))
        reports = work / "reports"

        def rollout(*args: str, limit: str | None = None):
            extra = ["--limit", limit] if limit else []
            return run_playbook(PLAYBOOK, inv, "-e", f"rollout_report_dir={reports}", *extra, *args)

        rollout.roots = roots
        rollout.reports = reports
        yield rollout
    finally:
        hostctl.down_many([PREFIX + name for name in FLEET])


def _stack_files(root: Path) -> dict[str, str]:
    out = {}
    base = root / "opt/libra"
    for path in sorted(base.rglob("*")) if base.exists() else []:
        if path.is_file() and "hf-cache" not in path.parts:
            out[str(path.relative_to(base))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


_PROBE = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print(0)
"""


def _health(host: str) -> int:
    """GET /health on the host's published vLLM port, from inside the host's network namespace."""
    res = hostctl.in_host(PREFIX + host, ["python3", "-c", _PROBE, str(_port(host))], capture_output=True, text=True,
                          check=False)
    return int(res.stdout.strip() or 0)


def _env(root: Path) -> dict[str, str]:
    text = (root / "opt/libra/.env").read_text()
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k: v.strip("'\"") for k, v in pairs}


@pytest.fixture(scope="module")
def first_rollout(fleet):
    return fleet(*SERIAL)


def test_first_rollout_sizes_each_host_for_its_gpu(fleet, first_rollout):
    run = first_rollout
    assert run.rc == 2, tail(run)  # the report play fails the run: fleet-05 has no GPU
    report, markdown = read_report(fleet.reports)
    assert results(report) == {h: ("failed_preflight" if h == NO_GPU else "deployed") for h in FLEET}, tail(run)
    by_host = {r["host"]: r for r in report["hosts"]}
    assert "nvidia-smi" in by_host[NO_GPU]["reason"]
    assert _stack_files(fleet.roots[NO_GPU]) == {}  # nothing was written on it
    # tier=auto per card: two instances on the 24 GB card, a lite stack on the 8 GB cards
    assert by_host["fleet-03"]["tier"]["name"] == "dual"
    assert (fleet.roots["fleet-03"] / "opt/libra/docker-compose.vllm.yml").exists()
    for host in ("fleet-02", "fleet-08"):
        assert by_host[host]["tier"]["compose_file"] == "docker-compose.vllm-lite.yml"
        assert (fleet.roots[host] / "opt/libra/docker-compose.vllm-lite.yml").exists()
    assert by_host["fleet-06"]["gpu"]["index"] == 1 and by_host["fleet-06"]["gpu"]["name"] == "NVIDIA TITAN RTX"
    assert by_host[ROLLBACK_HOST]["tier"]["name"] == "single"
    for host in GPU_HOSTS:
        rec = by_host[host]
        assert rec["health"] == "ok" and rec["completion_latency_ms"] is not None, rec
        assert rec["tier"]["planned_gpu_memory_gib"] > 0
        assert _health(host) == 200
        assert f"| {host} |" in markdown


def test_rerun_on_converged_fleet_changes_nothing(fleet, first_rollout):
    # fleet-02's dockerd restarts before the re-run: its containers come back by their restart
    # policy (unless-stopped) and the rollout finds nothing to do there either.
    pid_file = fleet.roots["fleet-02"] / "run/docker.pid"
    pid_before = pid_file.read_text().strip()
    restart = hostctl.in_host(PREFIX + "fleet-02", ["systemctl", "restart", "docker"], capture_output=True, text=True,
                              check=False)
    assert restart.returncode == 0, restart.stderr
    assert pid_file.read_text().strip() != pid_before
    run = fleet(*SERIAL)
    assert set(run.recap) >= set(FLEET), tail(run)
    assert {h: r["changed"] for h, r in run.recap.items()} == {h: 0 for h in run.recap}, tail(run, 200)
    report, _ = read_report(fleet.reports)
    assert results(report) == {h: ("failed_preflight" if h == NO_GPU else "deployed") for h in FLEET}
    # unchanged inputs, unchanged files and a healthy stack: no cut-over
    assert all(r["reason"].startswith("unchanged") and r["health"] == "ok" for r in report["hosts"] if r["host"] != NO_GPU)


# The dry run over part of the fleet: a lite and a dual host, the host without a GPU and the
# two-GPU host (a full rollout over all eight costs minutes of Ansible work on 2 cores).
CHECK_HOSTS = ["fleet-02", "fleet-03", NO_GPU, "fleet-06"]


def test_check_diff_changes_nothing(fleet, first_rollout):
    before = {h: _stack_files(fleet.roots[h]) for h in FLEET}
    run = fleet("--check", "--diff", "-e", json.dumps(CHANGE), *SERIAL, limit=",".join([*CHECK_HOSTS, "localhost"]))
    # the stage phase prints what each host would get; the change is a knob of every plan
    assert run.output.count("max_num_seqs 8") >= len([h for h in CHECK_HOSTS if h != NO_GPU]), tail(run)
    assert {h: _stack_files(fleet.roots[h]) for h in FLEET} == before
    assert read_report(fleet.reports)[0]["rollout"]["check_mode"] is True


def test_failed_health_gate_rolls_back_and_others_go_on(fleet, first_rollout):
    root = fleet.roots[ROLLBACK_HOST]
    env_before = _env(root)
    pid_file = fleet.roots[RESTART_HOST] / "run/docker.pid"
    pid_before = pid_file.read_text().strip()
    run = fleet("-e", json.dumps(CHANGE), *SERIAL)
    # fleet-08's dockerd restarted mid-rollout (its drain hook), and it still got the change below
    assert pid_file.read_text().strip() != pid_before, tail(run, 80)
    report, markdown = read_report(fleet.reports)
    expected = {h: "deployed" for h in GPU_HOSTS} | {NO_GPU: "failed_preflight", ROLLBACK_HOST: "rolled_back"}
    assert results(report) == expected, tail(run, 150)
    # the failed deploy's pending handlers are void after the rollback: no health wait on the
    # failed stack's ports (gone with it) that would fail the host after vllm_stack_wait_timeout
    assert run.recap[ROLLBACK_HOST]["failed"] == 0, tail(run, 150)
    # the previous (single, lite) stack is back and healthy
    assert _env(root) == env_before
    assert (root / "opt/libra/docker-compose.vllm-lite.yml").exists()
    assert not (root / "opt/libra/docker-compose.vllm.yml").exists()
    assert _health(ROLLBACK_HOST) == 200
    assert "**rolled_back**" in markdown
    # the others run the change
    for host in GPU_HOSTS:
        if host != ROLLBACK_HOST:
            assert _env(fleet.roots[host])["MAX_NUM_SEQS"] == "8", host
            assert _health(host) == 200


def test_too_many_failures_in_a_batch_stop_the_rollout(fleet, first_rollout):
    # batches over fleet-01..04: fleet-01 | fleet-02 fleet-03 | fleet-04; both hosts of the
    # second batch fail their gate (their previous stack too: the knob is a plain file).
    knobs = [knob_dir(fleet.roots[h]) / "fail-health" for h in ("fleet-02", "fleet-03")]
    change = {"fleet_change": {t: {"max_num_seqs": 4} for t in ("dual", "single", "ultralight", "int2")}}
    before = _stack_files(fleet.roots["fleet-04"])
    try:
        for knob in knobs:
            knob.parent.mkdir(parents=True, exist_ok=True)  # only fleet-07's knob folder exists yet
            knob.touch()
        # The rollback of fleet-02 and fleet-03 cannot pass (their knob stays): its probe of the
        # previous stack is held to 3 x 2 s here instead of the fleet's 12 x 2 s.
        run = fleet("-e", json.dumps(change), *SERIAL, "-e", json.dumps({"rollout_rollback_health_retries": 3}),
                    limit="fleet-01,fleet-02,fleet-03,fleet-04,localhost")  # localhost: the closing report play
    finally:
        for knob in knobs:
            knob.unlink(missing_ok=True)
    assert run.rc != 0
    report, markdown = read_report(fleet.reports)
    assert results(report) == {"fleet-01": "deployed", "fleet-02": "failed", "fleet-03": "failed",
                               "fleet-04": "skipped"}, tail(run, 150)
    assert _stack_files(fleet.roots["fleet-04"]) == before
    assert report["rollout"]["counts"]["skipped"] == 1
    assert "| fleet-04 |" in markdown
