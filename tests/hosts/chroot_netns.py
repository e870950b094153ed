#!/usr/bin/env python3
"""`ansible_chroot_exe` for the test hosts: chroot into a host from inside its network namespace.

community.general.chroot runs ``<chroot_exe> <root> <shell> -c <command>``. This wrapper reads
the host's network namespace from host.json beside its root (written by hostctl.py) and runs
``nsenter --net=/run/netns/<ns> -- chroot <root> ...``, so every module (uri, wait_for,
docker_compose_v2, ...) runs where the host's services are: 127.0.0.1:PORT is the host's own
loopback, and its docker CLI talks to its own engine through /run/docker.sock.
A root without host.json (a chroot not made by hostctl) is entered with plain chroot.
"""
import json
import os
import sys
from pathlib import Path


def main(argv):
    if not argv:
        sys.stderr.write("usage: chroot_netns.py ROOT COMMAND...\n")
        return 2
    root = Path(argv[0])
    try:
        ns = json.loads((root.parent / "host.json").read_text()).get("netns")
    except (OSError, ValueError):
        ns = None
    if ns:
        os.execvp("nsenter", ["nsenter", f"--net=/run/netns/{ns}", "--", "chroot", *argv])
    os.execvp("chroot", ["chroot", *argv])
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
