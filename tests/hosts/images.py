#!/usr/bin/env python3
"""Container images for the test hosts' real Docker Engines (nothing can be pulled here).

    images.py list                 the images and their tags
    images.py load HOST            load them into test host HOST's engine (builds the cache once)

One base image is the hosts' own debootstrap rootfs (tests/hosts/hostctl.py), `docker import`ed
without the engine's binaries and the documentation; every stand-in image is `docker build`
FROM it (Dockerfiles written here, build context streamed as a tar):

    libra-test/vllm-standin       tests/doubles/vllm_standin.py behind tests/doubles/
                                  vllm_standin_entry.py, which takes vLLM's command line
    libra-test/cuda-standin       the base alone, for the toolkit smoke test (`nvidia-smi -L`)
    libra-test/worker-standin     an ai-worker stand-in that idles until stopped
    libra-test/prometheus-standin tests/doubles/service_standin.py answering Prometheus' /-/healthy
    libra-test/grafana-standin    the same script answering Grafana's /api/health

Each is tagged TAG ("test") and the vLLM stand-in also ALT_TAG ("test-b"): tests switch the
stack's image tag to make Compose recreate the vLLM containers. The images are built in the
first host that needs them and kept as one `docker save` archive in
$LIBRA_TEST_CACHE/images-<key>.tar, keyed by the content of the files that make them; every
other host (and every later run) only `docker load`s it.

Failure knobs, read by the vLLM stand-in inside its container from the host's Hugging Face
cache, which the stack mounts at /root/.cache/huggingface (vllm_stack_hf_cache_dir on the host,
/opt/libra/hf-cache by default):
    <hf cache>/libra-test/fail-health   /health answers 503 (the container never becomes healthy)
    <hf cache>/libra-test/fail-start    the server exits 1 at start
An empty file applies to every vLLM container; otherwise one substring per line, matched
against the container's vLLM command line (e.g. a model id or a served model name).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOUBLES = HERE.parent / "doubles"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import hostctl  # noqa: E402

TAG = "test"
ALT_TAG = "test-b"
KNOB_DIR = "/root/.cache/huggingface/libra-test"
REPO_BASE = "libra-test/base"

# What the containers do not need from the hosts' rootfs (about 380 MB less per image).
EXCLUDE_PREFIXES = (
    "./usr/bin/docker", "./usr/sbin/dockerd", "./usr/sbin/docker-proxy", "./usr/bin/containerd",
    "./usr/bin/ctr", "./usr/sbin/runc", "./usr/bin/tini", "./usr/bin/docker-init",
    "./usr/share/doc", "./usr/share/man", "./usr/share/locale", "./usr/share/info",
    "./var/lib/apt/lists", "./var/cache", "./var/lib/docker", "./.libra-base-ok",
    "./proc/", "./sys/", "./dev/", "./run/",
)

IMAGES = {
    "libra-test/vllm-standin": {
        "files": {"vllm_standin.py": DOUBLES / "vllm_standin.py", "entry.py": DOUBLES / "vllm_standin_entry.py"},
        "dockerfile": [
            "COPY vllm_standin.py entry.py /opt/libra-test/",
            f'ENV LIBRA_TEST_FAIL_HEALTH={KNOB_DIR}/fail-health LIBRA_TEST_FAIL_START={KNOB_DIR}/fail-start',
            'ENTRYPOINT ["python3", "/opt/libra-test/entry.py"]',
        ],
        "tags": [TAG, ALT_TAG],
    },
    # The toolkit smoke test's image (`docker run --gpus all IMAGE nvidia-smi -L`): the hook
    # stand-in puts nvidia-smi into it, as NVIDIA's hook mounts the driver's.
    "libra-test/cuda-standin": {"files": {}, "dockerfile": [], "tags": [TAG]},
    "libra-test/worker-standin": {
        "files": {"service.py": DOUBLES / "service_standin.py"},
        "dockerfile": ["COPY service.py /opt/libra-test/", 'ENTRYPOINT ["python3", "/opt/libra-test/service.py", "idle"]'],
        "tags": [TAG],
    },
    "libra-test/prometheus-standin": {
        "files": {"service.py": DOUBLES / "service_standin.py"},
        "dockerfile": ["COPY service.py /opt/libra-test/",
                       'ENTRYPOINT ["python3", "/opt/libra-test/service.py", "prometheus", "--port", "9090"]'],
        "tags": [TAG],
    },
    "libra-test/grafana-standin": {
        "files": {"service.py": DOUBLES / "service_standin.py"},
        "dockerfile": ["COPY service.py /opt/libra-test/",
                       'ENTRYPOINT ["python3", "/opt/libra-test/service.py", "grafana", "--port", "3000"]'],
        "tags": [TAG],
    },
}


def refs() -> list[str]:
    return [f"{repo}:{tag}" for repo, spec in IMAGES.items() for tag in spec["tags"]]


def cache_key() -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(hostctl.recipe_key().encode())
    for spec in IMAGES.values():
        for src in spec["files"].values():
            h.update(src.read_bytes())
    return h.hexdigest()[:12]


def archive() -> Path:
    return hostctl.cache_dir() / f"images-{cache_key()}.tar"


def _docker(host: str, *args: str, stdin=None, env: dict | None = None, capture: bool = True) -> str:
    argv = ["env", *(f"{k}={v}" for k, v in (env or {}).items()), "docker", *args] if env else ["docker", *args]
    res = hostctl.in_host(host, argv, stdin=stdin, capture_output=capture, text=False, check=False)
    if res.returncode != 0:
        err = (res.stderr or b"").decode(errors="replace")
        raise SystemExit(f"images: docker {' '.join(args[:3])} failed on {host}: {err[-2000:]}")
    return (res.stdout or b"").decode(errors="replace")


def _stream_into(host: str, args: list[str], writer) -> None:
    """docker ARGS in HOST with writer(fh) producing its stdin (a tar stream)."""
    cmd = ["nsenter", f"--net=/run/netns/{hostctl.netns_name(host)}", "--", "chroot", str(hostctl.host_root(host)),
           "env", "DOCKER_BUILDKIT=0", "docker", *args]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            writer(proc.stdin)
        finally:
            proc.stdin.close()
        rc = proc.wait()
        if rc != 0:
            err.seek(0)
            raise SystemExit(f"images: docker {' '.join(args[:2])} failed on {host}: "
                             f"{err.read().decode(errors='replace')[-2000:]}")


def _base_rootfs_tar(fh) -> None:
    base = hostctl.base_root()

    def keep(info: tarfile.TarInfo):
        name = info.name if info.name.startswith("./") else "./" + info.name
        if any(name == p.rstrip("/") and p.endswith("/") for p in EXCLUDE_PREFIXES):
            return info  # keep the empty mount-point directories
        if any(name.startswith(p) for p in EXCLUDE_PREFIXES):
            return None
        return info

    with tarfile.open(fileobj=fh, mode="w|") as tf:
        tf.add(str(base), arcname=".", filter=keep)


def _context_tar(spec: dict, base_ref: str):
    def write(fh) -> None:
        with tarfile.open(fileobj=fh, mode="w|") as tf:
            dockerfile = "\n".join([f"FROM {base_ref}", *spec["dockerfile"]]) + "\n"
            data = dockerfile.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            info.mtime = 0
            tf.addfile(info, io.BytesIO(data))
            for name, src in spec["files"].items():
                data = src.read_bytes()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                tf.addfile(info, io.BytesIO(data))
    return write


def build_in(host: str) -> Path:
    """Build every image in HOST's engine and save them to the cache archive."""
    key = cache_key()
    base_ref = f"{REPO_BASE}:{key}"
    _stream_into(host, ["import", "-", base_ref], _base_rootfs_tar)
    for repo, spec in IMAGES.items():
        first = f"{repo}:{spec['tags'][0]}"
        _stream_into(host, ["build", "-q", "-t", first, "-"], _context_tar(spec, base_ref))
        for tag in spec["tags"][1:]:
            _docker(host, "tag", first, f"{repo}:{tag}")
    final = archive()
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as out:
        res = hostctl.in_host(host, ["docker", "save", *refs()], stdout=out, stderr=subprocess.PIPE, check=False)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"images: docker save failed on {host}: {res.stderr.decode(errors='replace')}")
    os.replace(tmp, final)
    return final


def load_into(host: str) -> dict:
    """Make every stand-in image present in HOST's engine; returns what it did and how long."""
    started = time.monotonic()
    present = set(_docker(host, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split())
    if set(refs()) <= present:
        return {"action": "present", "seconds": 0.0}
    final = archive()
    action = "loaded"
    if not final.exists():
        with hostctl.locked(hostctl.cache_dir() / f"{final.name}.lock"):
            if not final.exists():
                build_in(host)
                action = "built"
    if action == "loaded":
        with open(final, "rb") as fh:
            _docker(host, "load", "-q", stdin=fh)
    present = set(_docker(host, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split())
    missing = sorted(set(refs()) - present)
    if missing:
        raise SystemExit(f"images: still missing on {host} after {action}: {missing}")
    return {"action": action, "seconds": round(time.monotonic() - started, 2)}


def main(argv: list[str]) -> int:
    if argv[:1] == ["list"]:
        print("\n".join(refs()))
        return 0
    if argv[:1] == ["load"] and len(argv) == 2:
        print(json.dumps(load_into(argv[1])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
