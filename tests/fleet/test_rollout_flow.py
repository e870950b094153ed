"""Control flow of playbooks/rollout.yml, in seconds: local-connection hosts and the stand-in
roles of tests/fleet/stub_roles (see its README). What is tested here is the orchestration:
stage phase, serial batches, the batch gate, rescue + rollback, and a report that lists every
host whatever stopped the run. The real roles on Debian chroot hosts: test_fleet_chroot.py.

The batch gate is the playbook's own (the documented max_fail_percentage rule, applied per
batch, then meta end_play), so these tests hold on every supported ansible-core;
test_gate_holds_after_an_earlier_batch_had_failures covers a batch tripping after an earlier
batch had failures of its own.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from fleetlib import REPO, read_report, results, run_playbook, tail

PLAYBOOK = REPO / "playbooks" / "rollout.yml"
STUBS = REPO / "tests" / "fleet" / "stub_roles"
HOSTS = [f"h{i}" for i in range(1, 9)]
NO_GPU = "h4"


@pytest.fixture()
def fleet(tmp_path: Path):
    state = tmp_path / "hosts"
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "vllm_stack_start": False,
                "vllm_stack_dir": str(state) + "/{{ inventory_hostname }}",
                "stub_config": "v1",
                # the stand-in's input counts towards the fingerprint like the real roles' variables
                "rollout_fingerprint_pattern": "^(stub_config|vllm_stack_)",
            },
            "children": {"vllm_hosts": {"hosts": {h: ({"stub_no_gpu": True} if h == NO_GPU else {}) for h in HOSTS}}},
        }
    }
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump(inventory))
    reports = tmp_path / "reports"

    def rollout(*args: str):
        return run_playbook(PLAYBOOK, inv, "-e", f"rollout_report_dir={reports}", *args,
                            env={"ANSIBLE_ROLES_PATH": str(STUBS)})

    rollout.state = state
    rollout.reports = reports
    return rollout


def _env(state: Path, host: str) -> str:
    return (state / host / ".env").read_text().strip()


def _unhealthy(*hosts: str) -> list[str]:
    return ["-e", json.dumps({"stub_unhealthy": "{{ inventory_hostname in %s }}" % json.dumps(list(hosts))})]


def _serial(serial: list, max_fail: int) -> list[str]:
    return ["-e", json.dumps({"rollout_serial": serial, "rollout_max_fail_percentage": max_fail})]


def test_rollout_rollback_idempotence_and_report(fleet):
    # 1. first rollout: every GPU host deployed, the host without a GPU fails on its own.
    first = fleet()
    assert first.rc == 2, tail(first)  # the report play fails the run: one host was not deployed
    report, markdown = read_report(fleet.reports)
    assert results(report) == {h: ("failed_preflight" if h == NO_GPU else "deployed") for h in HOSTS}
    assert "nvidia-smi not found" in next(r for r in report["hosts"] if r["host"] == NO_GPU)["reason"]
    assert not (fleet.state / NO_GPU).exists()  # nothing changed on it
    assert all(_env(fleet.state, h) == "v1" for h in HOSTS if h != NO_GPU)
    assert report["rollout"]["phase"] == "done"
    for host in HOSTS:
        assert f"| {host} |" in markdown

    # 2. re-run on the converged fleet: nothing changes anywhere, and the unchanged hosts are
    #    left out of the cut-over (their stamp matches their inputs and files).
    again = fleet()
    assert set(again.recap) >= set(HOSTS), tail(again)
    assert {h: r["changed"] for h, r in again.recap.items()} == {h: 0 for h in again.recap}, tail(again)
    report, _ = read_report(fleet.reports)
    assert results(report) == {h: ("failed_preflight" if h == NO_GPU else "deployed") for h in HOSTS}
    assert all(r["reason"].startswith("unchanged") for r in report["hosts"] if r["host"] != NO_GPU)
    # a hand edit on one host is a change of its files: that host alone is cut over again
    (fleet.state / "h3" / ".env").write_text("edited by hand\n")
    drift = fleet()
    assert {h for h, r in drift.recap.items() if r["changed"]} == {"h3"}, tail(drift)
    assert _env(fleet.state, "h3") == "v1"

    # 3. dry run of a change: reported, nothing written.
    before = {h: hashlib.sha256((fleet.state / h / ".env").read_bytes()).hexdigest() for h in HOSTS if h != NO_GPU}
    dry = fleet("--check", "--diff", "-e", "stub_config=v2")
    assert "+v2" in dry.output, tail(dry)
    after = {h: hashlib.sha256((fleet.state / h / ".env").read_bytes()).hexdigest() for h in HOSTS if h != NO_GPU}
    assert before == after
    assert read_report(fleet.reports)[0]["rollout"]["check_mode"] is True

    # 4. a change rolled out while h6's new stack fails its health gate: h6 goes back to v1,
    #    the others get v2 (1 failure in a batch of 4 is not over 25 %).
    change = fleet("-e", "stub_config=v2", *_unhealthy("h6"), *_serial([1, 2, "100%"], 25))
    report, markdown = read_report(fleet.reports)
    expected = {h: "deployed" for h in HOSTS} | {NO_GPU: "failed_preflight", "h6": "rolled_back"}
    assert results(report) == expected, tail(change)
    assert _env(fleet.state, "h6") == "v1"
    assert all(_env(fleet.state, h) == "v2" for h in HOSTS if h not in (NO_GPU, "h6"))
    h6 = next(r for r in report["hosts"] if r["host"] == "h6")
    assert h6["health"] == "failed" and "GET /health returned 503" in h6["reason"]
    assert "**rolled_back**" in markdown


def test_gate_stops_the_rollout_at_the_failing_batch(fleet):
    # A first rollout (no previous stack anywhere, so a failed host cannot be rolled back);
    # batches over the 7 staged hosts: h1 | h2 h3 | h5 h6 h7 h8; both hosts of batch 2 fail.
    run = fleet(*_unhealthy("h2", "h3"), *_serial([1, 2, "100%"], 25))
    assert run.rc != 0
    report, markdown = read_report(fleet.reports)
    assert results(report) == {"h1": "deployed", "h2": "failed", "h3": "failed", NO_GPU: "failed_preflight",
                               "h5": "skipped", "h6": "skipped", "h7": "skipped", "h8": "skipped"}, tail(run)
    assert not any((fleet.state / h / ".env").exists() for h in ("h5", "h6", "h7", "h8"))
    assert report["rollout"]["phase"] == "done"  # the gate ends the cut-over play; the report play still runs
    assert report["rollout"]["gate"] == {"batch": 2, "failed": 2, "tripped": True}
    assert "skipped 4" in markdown


def test_gate_holds_after_an_earlier_batch_had_failures(fleet):
    # h1 | h2 h3 | h5 h6 | h7 h8 at 50 %: batch 2 loses one host (50 %, allowed), batch 3 loses
    # both (100 %): the rollout must stop there, h7 and h8 untouched. Without the playbook's own
    # gate check, ansible-core 2.19 would go on with h7 and h8 here.
    run = fleet(*_unhealthy("h2", "h5", "h6"), *_serial([1, 2, 2, "100%"], 50))
    assert run.rc != 0
    report, _ = read_report(fleet.reports)
    assert results(report) == {"h1": "deployed", "h2": "failed", "h3": "deployed", NO_GPU: "failed_preflight",
                               "h5": "failed", "h6": "failed", "h7": "skipped", "h8": "skipped"}, tail(run)
    assert not (fleet.state / "h7" / ".env").exists() and not (fleet.state / "h8" / ".env").exists()
