#!/usr/bin/env python3
"""TEST DOUBLE: a signed local apt repository standing in for NVIDIA's container toolkit repo.

    apt_mirror.py build            build (once, cached) the repository; prints its directory
    apt_mirror.py start [--port N] serve it on 127.0.0.1 (idempotent); prints the base URL
    apt_mirror.py stop             stop the server started by `start`
    apt_mirror.py url              print the base URL of the running server

Layout, the same as NVIDIA's (https://nvidia.github.io/libnvidia-container/gpgkey and the flat
repository https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH), per NVIDIA's install
guide for the container toolkit), relative to the base URL:

    /gpgkey                                   armored public key (throwaway, made at build time)
    /stable/deb/nvidia-container-toolkit.list the list file NVIDIA publishes (pointing here)
    /stable/deb/amd64/{InRelease,Release,Release.gpg,Packages,Packages.gz,*.deb}

Packages (stand-ins, at real release numbers of NVIDIA's toolkit: 1.17.7-1 and 1.17.8-1 per
https://github.com/NVIDIA/nvidia-container-toolkit/releases), with NVIDIA's dependency graph:
    nvidia-container-toolkit  Depends: nvidia-container-toolkit-base (= V), libnvidia-container-tools (>= V)
    nvidia-container-toolkit-base    /usr/bin/nvidia-ctk, /usr/bin/nvidia-container-runtime
    libnvidia-container-tools        /usr/bin/nvidia-container-cli; Depends: libnvidia-container1 (>= V)
    libnvidia-container1             (library placeholder)
    nvidia-container-toolkit also ships /usr/bin/nvidia-container-runtime-hook, which the docker
    double looks for before it starts a GPU container (Docker's "nvidia" device driver).

The nvidia-ctk stand-in implements `nvidia-ctk --version` and
`nvidia-ctk runtime configure --runtime=docker [--config=PATH] [--set-as-default] [--dry-run]`
the way the real tool does: it loads the existing daemon.json, adds
runtimes.nvidia = {"args": [], "path": "nvidia-container-runtime"} and keeps every other key,
then writes the file back with 4-space indentation (the output shape pasted in
NVIDIA/nvidia-container-toolkit#378). Like the real tool it rewrites the file on every call.

Environment: LIBRA_TEST_CACHE (default /var/cache/libra-tests), LIBRA_TEST_STATE_ROOT
(default /var/lib/libra-tests, holds the server's pid/port file), LIBRA_TEST_APT_PORT (18480).
Needs dpkg-deb, apt-ftparchive (apt-utils) and gpg on the controller.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# The test hosts' builder owns the shared cache folder and its file lock.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hosts"))
from hostctl import cache_dir, locked  # noqa: E402

VERSIONS = ("1.17.7-1", "1.17.8-1")
ARCH = "amd64"
DEFAULT_PORT = int(os.environ.get("LIBRA_TEST_APT_PORT", "18480"))

NVIDIA_CTK = r'''#!/usr/bin/python3
# TEST DOUBLE of nvidia-ctk @VERSION@ (from the libra test apt mirror). See tests/doubles/apt_mirror.py.
import json, os, sys

VERSION = "@UPSTREAM@"


def log(msg):
    sys.stderr.write('INFO[0000] %s\n' % msg)


def configure(args):
    runtime, config, set_default, dry_run = "docker", None, False, False
    i = 0
    while i < len(args):
        a = args[i]
        key, eq, val = a.partition("=")
        if key in ("--runtime", "--config", "--nvidia-runtime-name") and not eq:
            i += 1
            val = args[i]
        if key == "--runtime":
            runtime = val
        elif key == "--config":
            config = val
        elif key == "--set-as-default":
            set_default = val.lower() != "false" if eq else True
        elif key == "--dry-run":
            dry_run = val.lower() != "false" if eq else True
        i += 1
    if runtime != "docker":
        sys.stderr.write("test double: only --runtime=docker is implemented\n")
        return 1
    config = config or "/etc/docker/daemon.json"
    cfg = {}
    log("Loading config from %s" % config)
    if os.path.exists(config):
        with open(config) as fh:
            text = fh.read()
        if text.strip():
            try:
                cfg = json.loads(text)
            except ValueError as exc:
                sys.stderr.write('ERRO[0000] unable to load config for runtime "docker": could not load config: %s\n' % exc)
                return 1
    runtimes = cfg.setdefault("runtimes", {})
    runtimes["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
    if set_default:
        cfg["default-runtime"] = "nvidia"
    out = json.dumps(cfg, indent=4, sort_keys=True) + "\n"
    if dry_run:
        sys.stdout.write(out)
        return 0
    os.makedirs(os.path.dirname(config), exist_ok=True)
    with open(config, "w") as fh:
        fh.write(out)
    log("Wrote updated config to %s" % config)
    log("It is recommended that docker daemon be restarted.")
    return 0


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write("NAME:\n   NVIDIA Container Toolkit CLI - Tools to configure the NVIDIA Container Toolkit\n")
        return 0
    if argv[0] in ("--version", "-v", "version"):
        sys.stdout.write("NVIDIA Container Toolkit CLI version %s\ncommit: libra-test-double\n" % VERSION)
        return 0
    if argv[:2] == ["runtime", "configure"]:
        return configure(argv[2:])
    sys.stderr.write("test double: nvidia-ctk %s is not implemented\n" % " ".join(argv))
    return 1


sys.exit(main(sys.argv[1:]))
'''

SIMPLE_TOOL = r'''#!/bin/sh
# TEST DOUBLE of @NAME@ @VERSION@ (from the libra test apt mirror). See tests/doubles/apt_mirror.py.
case "$1" in
  --version|-V|version) echo "@NAME@ version @UPSTREAM@"; exit 0 ;;
esac
echo "@NAME@: test double, nothing to do" >&2
exit 0
'''


def state_file() -> Path:
    return Path(os.environ.get("LIBRA_TEST_STATE_ROOT", "/var/lib/libra-tests")) / "apt-mirror.json"


def recipe_key() -> str:
    src = Path(__file__).read_bytes()
    return hashlib.sha256(src + json.dumps(VERSIONS).encode()).hexdigest()[:12]


def repo_dir() -> Path:
    return cache_dir() / f"apt-mirror-{recipe_key()}"


def _deb(workdir: Path, outdir: Path, name: str, version: str, depends: str, files: dict[str, tuple[str, int]],
         description: str) -> None:
    pkg = workdir / f"{name}_{version}"
    (pkg / "DEBIAN").mkdir(parents=True)
    control = [f"Package: {name}", f"Version: {version}", f"Architecture: {ARCH}",
               "Maintainer: libra tests <tests@libra.invalid>", "Section: utils", "Priority: optional"]
    if depends:
        control.append(f"Depends: {depends}")
    control.append(f"Description: {description}")
    control.append(" Test double built by tests/doubles/apt_mirror.py; not NVIDIA software.")
    (pkg / "DEBIAN/control").write_text("\n".join(control) + "\n")
    for rel, (content, mode) in files.items():
        dest = pkg / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(content)
        dest.chmod(mode)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(pkg), str(outdir / f"{name}_{version}_{ARCH}.deb")],
                   check=True, stdout=subprocess.DEVNULL)


def build() -> Path:
    """Build the repository once (cached by this file's content); concurrent callers wait."""
    final = repo_dir()
    if (final / ".ok").exists():
        return final
    for tool in ("dpkg-deb", "apt-ftparchive", "gpg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"apt_mirror: {tool} is missing (apt-get install dpkg-dev apt-utils gnupg)")
    with locked(cache_dir() / f"{final.name}.lock"):
        if (final / ".ok").exists():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=cache_dir()))
        tmp.chmod(0o755)
        try:
            _build_into(tmp)
            (tmp / ".ok").write_text("ok\n")
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _build_into(root: Path) -> None:
    flat = root / "stable" / "deb" / ARCH
    flat.mkdir(parents=True)
    work = root / ".work"
    work.mkdir()
    for version in VERSIONS:
        upstream = version.split("-")[0]

        def sub(text: str, name: str = "") -> str:
            return text.replace("@VERSION@", version).replace("@UPSTREAM@", upstream).replace("@NAME@", name)

        _deb(work, flat, "libnvidia-container1", version, "", {
            f"usr/share/doc/libnvidia-container1/README.libra-test": ("test double placeholder\n", 0o644)},
            "NVIDIA container runtime library (test double)")
        _deb(work, flat, "libnvidia-container-tools", version, f"libnvidia-container1 (>= {version})", {
            "usr/bin/nvidia-container-cli": (sub(SIMPLE_TOOL, "nvidia-container-cli"), 0o755)},
            "NVIDIA container runtime library, command-line tools (test double)")
        _deb(work, flat, "nvidia-container-toolkit-base", version, "", {
            "usr/bin/nvidia-ctk": (sub(NVIDIA_CTK), 0o755),
            "usr/bin/nvidia-container-runtime": (sub(SIMPLE_TOOL, "nvidia-container-runtime"), 0o755)},
            "NVIDIA Container Toolkit Base (test double)")
        _deb(work, flat, "nvidia-container-toolkit", version,
             f"nvidia-container-toolkit-base (= {version}), libnvidia-container-tools (>= {version}), "
             "libnvidia-container-tools (<< 2.0.0)", {
                 "usr/bin/nvidia-container-runtime-hook": (sub(SIMPLE_TOOL, "nvidia-container-runtime-hook"), 0o755)},
             "NVIDIA Container toolkit (test double)")
    shutil.rmtree(work)
    # Flat repository indexes, as NVIDIA's: Packages with "Filename: ./x.deb", Release, InRelease.
    packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=flat, check=True,
                              capture_output=True, text=True).stdout
    (flat / "Packages").write_text(packages)
    subprocess.run(["gzip", "-9kn", "Packages"], cwd=flat, check=True)
    release = subprocess.run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=libra-test",
         "-o", "APT::FTPArchive::Release::Label=libnvidia-container (libra test double)",
         "-o", f"APT::FTPArchive::Release::Architectures={ARCH}", "release", "."],
        cwd=flat, check=True, capture_output=True, text=True).stdout
    (flat / "Release").write_text(release)
    gnupg = Path(tempfile.mkdtemp(prefix="libra-apt-gpg-"))
    try:
        env = dict(os.environ, GNUPGHOME=str(gnupg))
        gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
        subprocess.run(gpg + ["--quick-gen-key", "libra test apt mirror <tests@libra.invalid>", "ed25519", "sign", "1y"],
                       env=env, check=True, capture_output=True)
        subprocess.run(gpg + ["--armor", "--export", "--output", str(root / "gpgkey")], env=env, check=True)
        subprocess.run(gpg + ["--clearsign", "--output", str(flat / "InRelease"), str(flat / "Release")], env=env, check=True)
        subprocess.run(gpg + ["--armor", "--detach-sign", "--output", str(flat / "Release.gpg"), str(flat / "Release")],
                       env=env, check=True)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=dict(os.environ, GNUPGHOME=str(gnupg)), check=False,
                       capture_output=True)
        shutil.rmtree(gnupg, ignore_errors=True)
    (root / "stable" / "deb" / "nvidia-container-toolkit.list").write_text(
        "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
        "#deb https://nvidia.github.io/libnvidia-container/experimental/deb/$(ARCH) /\n")


# --- server -------------------------------------------------------------------------------------

def _read_state() -> dict | None:
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None


def _serving(st: dict | None) -> bool:
    if not st:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{st['port']}/gpgkey", timeout=2) as resp:
            return resp.status == 200 and resp.read().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    except Exception:
        return False


def url() -> str | None:
    st = _read_state()
    return f"http://127.0.0.1:{st['port']}" if _serving(st) else None


def start(port: int = DEFAULT_PORT) -> str:
    """Serve the (built) repository on 127.0.0.1:port; reuse a running server. Returns the base URL."""
    root = build()
    with locked(state_file().with_suffix(".lock")):
        st = _read_state()
        if _serving(st) and st.get("dir") == str(root):
            return f"http://127.0.0.1:{st['port']}"
        _stop_locked()
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise SystemExit(f"apt_mirror: port {port} is busy ({exc}); set LIBRA_TEST_APT_PORT") from exc
        log = open(state_file().with_suffix(".log"), "a")
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", str(root)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
        log.close()
        st = {"pid": proc.pid, "port": port, "dir": str(root)}
        state_file().write_text(json.dumps(st) + "\n")
        deadline = time.time() + 10
        while time.time() < deadline and not _serving(st):
            if proc.poll() is not None:
                raise SystemExit("apt_mirror: the HTTP server exited; see " + str(state_file().with_suffix(".log")))
            time.sleep(0.05)
        if not _serving(st):
            raise SystemExit("apt_mirror: the HTTP server did not come up")
        return f"http://127.0.0.1:{port}"


def _stop_locked() -> None:
    st = _read_state()
    if st:
        pid = st.get("pid")
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                ours = b"http.server" in fh.read()
        except OSError:
            ours = False
        if ours:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not os.path.exists(f"/proc/{pid}"):
                    break
                time.sleep(0.05)
        state_file().unlink(missing_ok=True)


def stop() -> None:
    with locked(state_file().with_suffix(".lock")):
        _stop_locked()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="apt_mirror.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    p_start = sub.add_parser("start")
    p_start.add_argument("--port", type=int, default=DEFAULT_PORT)
    sub.add_parser("stop")
    sub.add_parser("url")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        print(build())
    elif args.cmd == "start":
        print(start(args.port))
    elif args.cmd == "stop":
        stop()
    elif args.cmd == "url":
        u = url()
        if u is None:
            return 1
        print(u)
    return 0


if __name__ == "__main__":
    sys.exit(main())
