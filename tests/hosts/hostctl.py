#!/usr/bin/env python3
"""Debian test hosts for Molecule and fleet tests: one debootstrap base, overlayfs per host.

    hostctl.py base                      build (once, cached) the Debian 12 base rootfs
    hostctl.py up NAME... [--gpu REC | --no-gpu] [--debian-sources] [--no-engine]
                                         host(s) with the doubles installed and their Docker Engine
                                         started, stand-in images loaded; prints the roots
    hostctl.py up-many JSON [--prefix P] the same for hosts of different kinds, side by side: a JSON
                                         list of {name, gpu, debian_sources, engine} (Molecule's
                                         platforms); prints "NAME<TAB>ROOT" per host
    hostctl.py down NAME | --all         stop its engine and processes, unmount everything, remove
                                         its network namespace and its state
    hostctl.py list                      one line per host: name, root, gpu recording
    hostctl.py prune                     remove cached bases of older recipes no host uses
    hostctl.py root NAME                 print the root path of NAME
    hostctl.py netns NAME                print the network namespace of NAME

Each host is a chroot (overlayfs over the cached base) in a network namespace of its own
(``libra-<state dir hash>-NAME``, loopback up). Ansible reaches it with
``ansible_connection: community.general.chroot``, ``ansible_host: <root>`` and
``ansible_chroot_exe: tests/hosts/chroot_netns.py`` (enters the namespace, then chroots), so
127.0.0.1:PORT is the host's own and hosts can publish the same ports. It has its own /proc,
/dev, /dev/pts, /sys (with the controller's cgroup tree) and /run mounts, runs its own dockerd
(Debian's docker.io, flags ENGINE_FLAGS, data root bind-mounted from <state>/NAME/docker, the
Compose v2 plugin from tests/deps/step_docker.py bind-mounted, the stand-in images of
tests/hosts/images.py loaded), serves the apt mirror double on 127.0.0.1:18480 inside its
namespace, and carries the test doubles from ``tests/doubles``:

    /usr/local/bin/nvidia-smi     (absent with --no-gpu)  replays /etc/libra-test/gpu's recording
    /usr/local/bin/nvidia-container-runtime-hook  (absent with --no-gpu)  NVIDIA's hook stand-in
    /usr/local/bin/systemctl      starts/stops/restarts the host's real dockerd (by pid file)
    /usr/local/share/libra-test/  recordings and the vLLM HTTP stand-in

Environment:
    LIBRA_TEST_CACHE   cache dir for the base rootfs (default /var/cache/libra-tests)
    LIBRA_TEST_STATE   per-host state (default /var/lib/libra-tests/hosts)
    LIBRA_TEST_MIRROR  Debian mirror for debootstrap (default http://deb.debian.org/debian)

Stdlib only, importable: ``build_base()``, ``up()``, ``up_many()``, ``down()``, ``down_many()``,
``list_hosts()``.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
DOUBLES = HERE.parent / "doubles"

SUITE = "bookworm"
VARIANT = "minbase"
# What a real Debian 12 server that Ansible manages has, beyond minbase: python3 for Ansible,
# python3-apt / python3-debian for ansible.builtin.apt and deb822_repository, ca-certificates
# and gnupg for third-party apt repositories, python3-yaml for the docker stand-in's compose
# parsing, procps for ps/pkill.
PACKAGES = (
    "python3",
    "python3-apt",
    "python3-debian",
    "python3-yaml",
    "ca-certificates",
    "gnupg",
    "procps",
)
# Docker Engine from Debian's docker.io (dockerd, containerd, runc, docker-proxy, tini, the
# docker CLI), installed after debootstrap with services kept from starting (policy-rc.d).
# Each host runs its own dockerd (see engine_start); the compose plugin comes from
# tests/deps/step_docker.py.
ENGINE_PACKAGES = ("docker.io",)
RECIPE_VERSION = 3  # bump when the post-debootstrap steps below change


def cache_dir() -> Path:
    return Path(os.environ.get("LIBRA_TEST_CACHE", "/var/cache/libra-tests"))


def state_dir() -> Path:
    return Path(os.environ.get("LIBRA_TEST_STATE", "/var/lib/libra-tests/hosts"))


def mirror() -> str:
    return os.environ.get("LIBRA_TEST_MIRROR", "http://deb.debian.org/debian")


def recipe() -> dict:
    return {
        "suite": SUITE,
        "variant": VARIANT,
        "packages": list(PACKAGES),
        "engine_packages": list(ENGINE_PACKAGES),
        "mirror": mirror(),
        "version": RECIPE_VERSION,
    }


def recipe_key() -> str:
    blob = json.dumps(recipe(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def base_root() -> Path:
    return cache_dir() / f"base-{SUITE}-{recipe_key()}"


def log(msg: str) -> None:
    print(f"hostctl: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_base() -> Path:
    """Build the cached base rootfs once; concurrent callers wait on a file lock."""
    root = base_root()
    if (root / ".libra-base-ok").exists():
        return root
    with locked(cache_dir() / f"{root.name}.lock"):
        if (root / ".libra-base-ok").exists():
            return root
        if shutil.which("debootstrap") is None:
            raise SystemExit("hostctl: debootstrap is missing (apt-get install debootstrap)")
        tmp = Path(tempfile.mkdtemp(prefix=f"{root.name}.tmp-", dir=cache_dir()))
        tmp.chmod(0o755)  # it becomes the hosts' "/": mkdtemp's 0700 would lock out _apt & co.
        started = time.monotonic()
        log(f"building {root} with debootstrap ({SUITE}, {VARIANT}); about 40-60 s")
        try:
            res = subprocess.run(
                ["debootstrap", f"--variant={VARIANT}", "--include=" + ",".join(PACKAGES),
                 SUITE, str(tmp), mirror()],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
            )
            if res.returncode != 0:
                raise SystemExit(f"hostctl: debootstrap failed:\n{res.stdout[-4000:]}")
            # Package lists fetched once here, so a host's `apt-get update` only revalidates
            # them (a fresh Debian main index is ~9 MB per host otherwise); no .deb caches; no
            # daemons started by package scripts in a chroot (policy-rc.d exit 101 = forbidden).
            policy = tmp / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\n# test host: never start services from maintainer scripts\nexit 101\n")
            policy.chmod(0o755)
            run(["chroot", str(tmp), "apt-get", "update", "-qq"])
            run(["chroot", str(tmp), "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 *ENGINE_PACKAGES], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                stdout=subprocess.DEVNULL)
            run(["chroot", str(tmp), "apt-get", "clean"])
            (tmp / "etc/hostname").write_text("libra-test\n")
            (tmp / "etc/libra-test").mkdir(exist_ok=True)
            (tmp / "etc/libra-test/recipe.json").write_text(json.dumps(recipe(), indent=2) + "\n")
            (tmp / ".libra-base-ok").write_text(f"built in {time.monotonic() - started:.0f}s\n")
            if root.exists():
                shutil.rmtree(root)
            os.rename(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"base ready in {time.monotonic() - started:.0f}s")
    return root


# --- mounts -----------------------------------------------------------------------------

def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (from /proc/self/mountinfo)."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def is_mounted(path: Path) -> bool:
    return str(path) in mounts_under(path)


def host_dir(name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise SystemExit(f"hostctl: bad host name {name!r}")
    return state_dir() / name


def host_root(name: str) -> Path:
    return host_dir(name) / "root"


def _mount_host(name: str, base: Path) -> Path:
    hd = host_dir(name)
    root = hd / "root"
    for sub in ("upper", "work", "root"):
        (hd / sub).mkdir(parents=True, exist_ok=True)
    if not is_mounted(root):
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={base},upperdir={hd / 'upper'},workdir={hd / 'work'}", str(root)])
    # dockerd's overlay2 cannot stack on the host's overlay: its data root is a plain folder
    # of the real filesystem, bind-mounted at /var/lib/docker.
    (hd / "docker").mkdir(exist_ok=True)
    wanted = [
        ("proc", ["mount", "-t", "proc", "proc"]),
        ("sys", ["mount", "-t", "sysfs", "-o", "ro", "sysfs"]),
        # dockerd puts each container in cgroups (memory limit, pids): the controller's tree.
        ("sys/fs/cgroup", ["mount", "--rbind", "/sys/fs/cgroup"]),
        ("dev", ["mount", "--bind", "/dev"]),
        ("dev/pts", ["mount", "--bind", "/dev/pts"]),
        ("run", ["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "tmpfs"]),
        ("var/lib/docker", ["mount", "--bind", str(hd / "docker")]),
    ]
    for rel, cmd in wanted:
        target = root / rel
        target.mkdir(parents=True, exist_ok=True)
        if not is_mounted(target):
            run(cmd + [str(target)])
    plugin = root / COMPOSE_PLUGIN
    if not is_mounted(plugin):
        plugin.parent.mkdir(parents=True, exist_ok=True)
        plugin.touch()
        run(["mount", "--bind", str(compose_binary()), str(plugin)])
    return root


COMPOSE_PLUGIN = "usr/local/lib/docker/cli-plugins/docker-compose"


def compose_binary() -> Path:
    """The pinned Docker Compose v2 binary (tests/deps/step_docker.py installs and caches it)."""
    sys.path.insert(0, str(HERE.parent / "deps"))
    import step_docker  # noqa: E402  (stdlib only)
    path = step_docker.plugin_path()
    if not path.exists():
        path = step_docker.install()
    return path


def _install(src: Path, dst: Path, mode: int = 0o755) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".hostctl-tmp")
    shutil.copyfile(src, tmp)
    tmp.chmod(mode)
    os.replace(tmp, dst)


def set_debian_sources(root: Path, enabled: bool) -> None:
    """Hosts see only the local mirrors by default: `apt-get update` then never waits on (or
    fails with) the Debian mirror, and a role that needs a Debian package says so."""
    active = root / "etc/apt/sources.list"
    parked = root / "etc/apt/sources.list.libra-disabled"
    if enabled and parked.exists() and not active.exists():
        os.replace(parked, active)
    elif not enabled and active.exists():
        os.replace(active, parked)


def install_doubles(root: Path, gpu: str | None) -> None:
    share = root / "usr/local/share/libra-test"
    rec_src = DOUBLES / "recordings"
    if share.exists():
        shutil.rmtree(share)
    shutil.copytree(rec_src, share / "recordings")
    for helper in ("vllm_standin.py",):
        if (DOUBLES / helper).exists():
            _install(DOUBLES / helper, share / helper, 0o644)
    bindir = root / "usr/local/bin"
    for tool in ("systemctl",):
        if (DOUBLES / "bin" / tool).exists():
            _install(DOUBLES / "bin" / tool, bindir / tool)
    cfg = root / "etc/libra-test"
    cfg.mkdir(parents=True, exist_ok=True)
    if gpu is None:
        (bindir / "nvidia-smi").unlink(missing_ok=True)
        (bindir / "nvidia-container-runtime-hook").unlink(missing_ok=True)
        (cfg / "gpu").unlink(missing_ok=True)
    else:
        if not (rec_src / "nvidia-smi" / f"{gpu}.json").exists():
            known = ", ".join(recordings())
            raise SystemExit(f"hostctl: no GPU recording {gpu!r}; known: {known}")
        _install(DOUBLES / "bin" / "nvidia-smi", bindir / "nvidia-smi")
        _install(DOUBLES / "bin" / "nvidia-container-runtime-hook", bindir / "nvidia-container-runtime-hook")
        (cfg / "gpu").write_text(gpu + "\n")
    # apt's binary caches (pkgcache.bin + srcpkgcache.bin, ~76 MB) would be rebuilt into every
    # host's upper dir by the first apt run; apt.conf(5): an empty Dir::Cache::*pkgcache
    # disables them (apt then builds the cache in memory).
    aptconf = root / "etc/apt/apt.conf.d/99libra-test-no-pkgcache"
    aptconf.write_text('// test host: keep overlay upper dirs small\nDir::Cache::pkgcache "";\n'
                       'Dir::Cache::srcpkgcache "";\n')
    # The engine reads /etc/docker/daemon.json (optional) when it starts; the systemctl stand-in
    # starts dockerd with these flags (see ENGINE_FLAGS).
    (root / "etc/docker").mkdir(parents=True, exist_ok=True)
    (cfg / "dockerd.json").write_text(json.dumps({"flags": list(ENGINE_FLAGS)}, indent=1) + "\n")


def recordings() -> list[str]:
    return sorted(p.stem for p in (DOUBLES / "recordings" / "nvidia-smi").glob("*.json"))


DEFAULT_GPU = "rtx2070-8gb"

# dockerd inside each host: no iptables rules and no default bridge (nothing touches the
# controller's firewall or addresses; Compose's project networks are bridges inside the host's
# own network namespace, published ports go through docker-proxy on the host's loopback);
# overlay2 on the bind-mounted data root. Its pid file, socket (unix:///run/docker.sock) and
# exec root are under the host's own /run.
ENGINE_FLAGS = (
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
    "--storage-driver=overlay2",
    "--data-root=/var/lib/docker",
    "--exec-root=/run/docker",
    "--pidfile=/run/docker.pid",
    "--host=unix:///run/docker.sock",
)
# The apt mirror double is served inside every host's network namespace on this port.
APT_MIRROR_PORT = 18480


def netns_name(name: str) -> str:
    """Network namespace of host NAME: unique per state dir, so two test runs with their own
    LIBRA_TEST_STATE never share one even when their host names are the same."""
    run_id = hashlib.sha256(str(state_dir().resolve()).encode()).hexdigest()[:8]
    return f"libra-{run_id}-{name}"


def _netns_up(name: str) -> str:
    ns = netns_name(name)
    if not Path(f"/run/netns/{ns}").exists():
        run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    return ns


def in_host(name: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run argv inside host NAME: its network namespace, chrooted into its root."""
    cmd = ["nsenter", f"--net=/run/netns/{netns_name(name)}", "--", "chroot", str(host_root(name)), *argv]
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def _pid_alive(pidfile: Path, needle: bytes) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return pid if needle in fh.read() else None
    except (OSError, ValueError):
        return None


def _apt_mirror_up(name: str) -> None:
    """The NVIDIA repository stand-in (tests/doubles/apt_mirror.py), served on 127.0.0.1 inside
    the host's network namespace: the same URL on every host, no port on the controller."""
    sys.path.insert(0, str(DOUBLES))
    import apt_mirror  # noqa: E402
    repo = apt_mirror.build()
    pidfile = host_dir(name) / "apt-mirror.pid"
    if _pid_alive(pidfile, b"http.server"):
        return
    log_fh = open(host_dir(name) / "apt-mirror.log", "a")
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns_name(name)}", "--", sys.executable, "-m",
                             "http.server", str(APT_MIRROR_PORT), "--bind", "127.0.0.1", "--directory", str(repo)],
                            stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True)
    log_fh.close()
    pidfile.write_text(f"{proc.pid}\n")


def engine_start(name: str) -> float:
    """Start the host's dockerd through its systemctl stand-in (the path a role's restart takes)
    and wait for the API; returns the seconds it took."""
    started = time.monotonic()
    res = in_host(name, ["/usr/local/bin/systemctl", "start", "docker"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        log_tail = (host_root(name) / "var/log/dockerd.log")
        text = log_tail.read_text()[-3000:] if log_tail.exists() else ""
        raise SystemExit(f"hostctl: dockerd did not start on {name}: {res.stderr}\n{text}")
    return time.monotonic() - started


def up(name: str, gpu: str | None = DEFAULT_GPU, debian_sources: bool = False, engine: bool = True) -> Path:
    """Create (or refresh) host NAME; gpu=None means a host without nvidia-smi;
    debian_sources=True keeps deb.debian.org in the host's apt sources; engine=True starts
    its dockerd and loads the stand-in images (tests/hosts/images.py)."""
    base = build_base()
    with locked(state_dir() / f".{name}.lock"):
        root = _mount_host(name, base)
        install_doubles(root, gpu)
        set_debian_sources(root, debian_sources)
        ns = _netns_up(name)
        _apt_mirror_up(name)
        meta = {"name": name, "root": str(root), "gpu": gpu, "base": str(base), "debian_sources": debian_sources,
                "netns": ns}
        (host_dir(name) / "host.json").write_text(json.dumps(meta, indent=2) + "\n")
        if engine:
            meta["engine_start_s"] = round(engine_start(name), 2)
            import images  # noqa: E402  (tests/hosts/images.py, beside this file)
            meta["images"] = images.load_into(name)
            (host_dir(name) / "host.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root


def up_many(specs: list[dict]) -> dict[str, Path]:
    """``up`` of several hosts side by side; each spec is ``{"name", "gpu", "debian_sources",
    "engine"}`` (``up``'s arguments; a missing key takes ``up``'s default, other keys are
    ignored, gpu "none" is a host without nvidia-smi). Each host mostly waits
    for its dockerd and the image load, so eight hosts take about as long as two. Returns each
    host's root by name, in the order given."""
    from concurrent.futures import ThreadPoolExecutor

    if not specs:
        return {}
    keys = ("name", "gpu", "debian_sources", "engine")
    specs = [{k: spec[k] for k in keys if k in spec} for spec in specs]
    for spec in specs:
        if spec.get("gpu") == "none":  # Molecule platforms spell a host without nvidia-smi so
            spec["gpu"] = None
    build_base()  # once, before the threads (they would wait on its lock anyway)
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = [(spec["name"], pool.submit(up, **spec)) for spec in specs]
        return {name: future.result() for name, future in futures}  # re-raises the first failure


def _processes_in(root: Path) -> list[int]:
    pids = []
    real = os.path.realpath(root)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            proot = os.readlink(f"/proc/{entry}/root")
        except OSError:
            continue
        if proot == real or proot.startswith(real + "/"):
            pids.append(int(entry))
    return pids


def _processes_of(name: str) -> list[int]:
    """Everything host NAME runs: processes chrooted into it, processes in its network namespace
    (the apt mirror, docker-proxy) and its containers (found by their cgroup, named after the
    container ids in the host's data root)."""
    hd = host_dir(name)
    pids = set(_processes_in(hd / "root"))
    ns = netns_name(name)
    if Path(f"/run/netns/{ns}").exists():
        res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
        pids.update(int(x) for x in res.stdout.split() if x.isdigit())
    ids = [p.name for p in (hd / "docker" / "containers").glob("*")] if (hd / "docker" / "containers").is_dir() else []
    if ids:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cgroup") as fh:
                    text = fh.read()
            except OSError:
                continue
            if any(cid in text for cid in ids):
                pids.add(int(entry))
    pids.discard(os.getpid())
    return sorted(pids)


def _kill_all(name: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _processes_of(name)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _processes_of(name):
            time.sleep(0.1)


def engine_stop(name: str, timeout: float = 30) -> None:
    """Stop dockerd by its pid file (it stops its containers and its containerd first)."""
    pidfile = host_root(name) / "run/docker.pid"
    pid = _pid_alive(pidfile, b"dockerd")
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.1)


def down(name: str) -> None:
    """Stop the host's engine and processes, unmount everything below it, remove its network
    namespace and its state."""
    hd = host_dir(name)
    root = hd / "root"
    if root.exists():
        with contextlib.suppress(OSError):
            engine_stop(name)
        _kill_all(name)
    for point in mounts_under(hd):
        res = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = mounts_under(hd)
    if left:
        raise SystemExit(f"hostctl: could not unmount {left}")
    ns = netns_name(name)
    if Path(f"/run/netns/{ns}").exists():
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
    if hd.exists():
        shutil.rmtree(hd)
    (state_dir() / f".{name}.lock").unlink(missing_ok=True)


def down_many(names: list[str]) -> None:
    """``down`` of several hosts side by side: each mostly waits for its dockerd to stop its
    containers, so eight hosts take about as long as one."""
    from concurrent.futures import ThreadPoolExecutor

    names = list(names)
    if not names:
        return
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        for future in [pool.submit(down, name) for name in names]:
            future.result()  # re-raises the first failure (after every down has finished)


def prune() -> list[Path]:
    """Remove cached base rootfs from older recipes that no mounted host uses."""
    with open("/proc/self/mountinfo") as fh:
        in_use = fh.read()
    removed = []
    for old in cache_dir().glob("base-*"):
        if old == base_root() or not old.is_dir() or f"lowerdir={old}" in in_use:
            continue
        shutil.rmtree(old)
        removed.append(old)
    return removed


def list_hosts() -> list[dict]:
    hosts = []
    if state_dir().exists():
        for meta in sorted(state_dir().glob("*/host.json")):
            hosts.append(json.loads(meta.read_text()))
    return hosts


def all_names() -> list[str]:
    if not state_dir().exists():
        return []
    return sorted(p.name for p in state_dir().iterdir() if p.is_dir() and not p.name.startswith("."))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hostctl.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("base", help="build the cached base rootfs")
    p_up = sub.add_parser("up", help="create or refresh a host")
    p_up.add_argument("names", nargs="+", metavar="NAME")
    grp = p_up.add_mutually_exclusive_group()
    grp.add_argument("--gpu", default=DEFAULT_GPU, help=f"nvidia-smi recording (default {DEFAULT_GPU})")
    grp.add_argument("--no-gpu", action="store_true", help="no nvidia-smi on this host")
    p_up.add_argument("--debian-sources", action="store_true", help="keep deb.debian.org in apt's sources")
    p_up.add_argument("--no-engine", action="store_true", help="do not start dockerd nor load the stand-in images")
    p_many = sub.add_parser("up-many", help="hosts side by side from a JSON list of up()'s arguments")
    p_many.add_argument("specs", help='JSON, e.g. [{"name": "a", "gpu": "rtx2070-8gb", "engine": true}]')
    p_many.add_argument("--prefix", default="", help="put before each name (e.g. the Molecule scenario)")
    p_down = sub.add_parser("down", help="remove hosts")
    p_down.add_argument("names", nargs="*", metavar="NAME")
    p_down.add_argument("--all", action="store_true")
    sub.add_parser("list", help="list hosts")
    sub.add_parser("prune", help="remove cached bases of older recipes that no host uses")
    sub.add_parser("recordings", help="list GPU recordings")
    p_ns = sub.add_parser("netns", help="print a host's network namespace")
    p_ns.add_argument("name")
    p_root = sub.add_parser("root", help="print a host's root path")
    p_root.add_argument("name")
    args = ap.parse_args(argv)

    if os.geteuid() != 0 and args.cmd in ("base", "up", "up-many", "down", "prune"):
        raise SystemExit("hostctl: needs root (debootstrap, mount)")
    if args.cmd == "base":
        print(build_base())
    elif args.cmd == "up":
        for name in args.names:
            print(up(name, None if args.no_gpu else args.gpu, args.debian_sources, not args.no_engine))
    elif args.cmd == "up-many":
        specs = [dict(spec, name=args.prefix + spec["name"]) for spec in json.loads(args.specs)]
        for name, root in up_many(specs).items():
            print(f"{name}\t{root}")
    elif args.cmd == "down":
        names = all_names() if args.all else args.names
        if not names and not args.all:
            ap.error("down needs NAME or --all")
        down_many(names)
    elif args.cmd == "list":
        for h in list_hosts():
            print(f"{h['name']}\t{h['root']}\t{h['gpu'] or '-'}")
    elif args.cmd == "prune":
        for path in prune():
            print(f"removed {path}")
    elif args.cmd == "recordings":
        print("\n".join(recordings()))
    elif args.cmd == "netns":
        print(netns_name(args.name))
    elif args.cmd == "root":
        print(host_root(args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
