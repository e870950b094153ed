#!/usr/bin/env python3
"""Fleet rollout timing: playbooks/rollout.yml on 16 and 32 Debian chroot hosts.

For each fleet size, in the same run and with the same forks:
  (a) rollout  a full rollout onto fresh hosts (stage, canary + growing batches, health gates);
  (b) no-op    the same rollout again on the converged fleet (must change nothing);
  (c) floor    Ansible's own floor: fact gathering plus three file tasks on the same hosts.
Each figure is printed with its ratio to the floor. Aim: no-op within 3x the floor at 32 hosts.

    sudo .venv/bin/python bench/fleet.py                  # 16 and 32 hosts (several minutes)
    sudo .venv/bin/python bench/fleet.py --hosts 4        # a quick run
    sudo .venv/bin/python bench/fleet.py --hosts 16,32 --forks 16 --keep

Hosts are overlayfs chroots from tests/hosts/hostctl.py with the test doubles (nvidia-smi
replaying real recordings, the Docker CLI stand-in and its vLLM HTTP stand-in, the local apt
mirror); they are removed at the end unless --keep. Needs root, debootstrap and overlayfs.

Measured (2 cores, shared with other test runs; stat-per-file converged check):
    hosts forks  rollout s  x floor  no-op s  x floor  floor s
       16    16      699.1    42.18     49.7     3.00     16.6
       32    16      900.0    29.53     88.3     2.90     30.5
The no-op re-run skips the cut-over of every host (fingerprint stamp + file checksums +
/health); what is left is preflight, one find and one /health probe per instance per host.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "fleet"), str(REPO / "tests" / "hosts")]

import yaml  # noqa: E402

import hostctl  # noqa: E402
from fleetlib import build_apt_mirror, chroot_inventory, run_playbook, seed_hf_cache  # noqa: E402

PREFIX = "bench--"
# Recordings of tests/doubles/recordings/nvidia-smi whose planned tiers fit, cycled over the fleet.
GPUS = ["rtx3060-12gb", "rtx2070-8gb", "rtx4090-24gb", "t4-16gb", "multi-2080ti22gb-titanrtx"]

FLOOR_PLAYBOOK = """\
---
# Ansible's floor on these hosts: fact gathering plus three file tasks.
- name: Floor
  hosts: vllm_hosts
  gather_facts: true
  tasks:
    - name: Floor | a directory
      ansible.builtin.file:
        path: /opt/bench-floor
        state: directory
        mode: "0755"
    - name: Floor | a file in it
      ansible.builtin.copy:
        content: "floor\\n"
        dest: /opt/bench-floor/a
        mode: "0644"
    - name: Floor | its mode again
      ansible.builtin.file:
        path: /opt/bench-floor/a
        mode: "0644"
"""


def build(n: int) -> dict[str, dict]:
    hosts = {}
    for i in range(1, n + 1):
        name = f"b{i:03d}"
        gpu = GPUS[(i - 1) % len(GPUS)]
        root = hostctl.up(PREFIX + name, gpu)
        hostvars = {"ansible_host": str(root), "fleet_port": 19000 + 10 * i}
        if gpu.startswith("multi-"):
            hostvars["gpu_facts_index"] = 1
        hosts[name] = hostvars
    seed_hf_cache(h["ansible_host"] for h in hosts.values())
    return hosts


def teardown(n: int) -> None:
    for i in range(1, n + 1):
        hostctl.down(PREFIX + f"b{i:03d}")


def changed_hosts(run) -> list[str]:
    return sorted(h for h, r in run.recap.items() if r.get("changed"))


def bench(n: int, forks: int, work: Path, mirror_url: str) -> dict:
    t0 = time.monotonic()
    hosts = build(n)
    setup_s = time.monotonic() - t0
    inv = work / f"hosts-{n}.yml"
    inv.write_text(yaml.safe_dump(chroot_inventory(hosts, mirror_url), sort_keys=False))
    floor_pb = work / "floor.yml"
    floor_pb.write_text(FLOOR_PLAYBOOK)
    env = {"ANSIBLE_FORKS": str(forks)}
    common = ["-e", f"rollout_report_dir={work / 'reports'}"]

    rollout = run_playbook(REPO / "playbooks" / "rollout.yml", inv, *common, env=env, timeout=7200)
    noop = run_playbook(REPO / "playbooks" / "rollout.yml", inv, *common, env=env, timeout=7200)
    floor = run_playbook(floor_pb, inv, env=env, timeout=3600)
    # the floor's first run creates its files; time its converged re-run as well
    floor2 = run_playbook(floor_pb, inv, env=env, timeout=3600)
    report = json.loads((work / "reports" / "rollout.json").read_text())
    return {
        "hosts": n, "forks": forks, "setup_s": setup_s,
        "rollout_s": rollout.seconds, "rollout_rc": rollout.rc,
        "noop_s": noop.seconds, "noop_rc": noop.rc, "noop_changed_hosts": changed_hosts(noop),
        "floor_s": min(floor.seconds, floor2.seconds), "floor_rc": floor.rc,
        "counts": report["rollout"]["counts"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", default="16,32", help="comma-separated fleet sizes (default 16,32)")
    ap.add_argument("--forks", type=int, default=16, help="Ansible forks for every run (default 16, as ansible.cfg)")
    ap.add_argument("--keep", action="store_true", help="keep the chroot hosts")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("needs root (debootstrap, mount, chroot)")
    sizes = [int(x) for x in args.hosts.split(",") if x.strip()]

    mirror_url = build_apt_mirror()
    rows = []
    with tempfile.TemporaryDirectory(prefix="libra-bench-fleet-") as tmp:
        for n in sizes:
            try:
                row = bench(n, args.forks, Path(tmp), mirror_url)
            finally:
                if not args.keep:
                    teardown(n)
            rows.append(row)
            print_row(row)
    print()
    print(f"{'hosts':>5} {'forks':>5} {'rollout s':>10} {'x floor':>8} {'no-op s':>8} {'x floor':>8} {'floor s':>8}  no-op changed")
    for r in rows:
        print(f"{r['hosts']:>5} {r['forks']:>5} {r['rollout_s']:>10.1f} {r['rollout_s'] / r['floor_s']:>8.2f} "
              f"{r['noop_s']:>8.1f} {r['noop_s'] / r['floor_s']:>8.2f} {r['floor_s']:>8.1f}  "
              f"{', '.join(r['noop_changed_hosts']) or 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def print_row(r: dict) -> None:
    print(f"[{r['hosts']} hosts, forks {r['forks']}] hosts built in {r['setup_s']:.1f}s; "
          f"rollout {r['rollout_s']:.1f}s (rc {r['rollout_rc']}, {r['counts']}); "
          f"no-op {r['noop_s']:.1f}s (rc {r['noop_rc']}, changed on: {', '.join(r['noop_changed_hosts']) or 'none'}); "
          f"floor {r['floor_s']:.1f}s (rc {r['floor_rc']})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
