"""The docker double answers community.docker's compose calls the way Docker does.

The judge is community.docker's own parser: the double's stderr goes through
compose_v2.parse_events / has_changes (the functions docker_compose_v2 uses to decide
`changed`), so "a second `up` changes nothing" is checked the way the module checks it.
Runs on the controller with the double's paths pointed at a temporary directory.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ansible_collections.community.docker.plugins.module_utils.compose_v2 import has_changes, parse_events

HERE = Path(__file__).resolve().parent
DOCKER = HERE / "bin" / "docker"

pytestmark = pytest.mark.skipif(not Path("/usr/bin/python3").exists(),
                                reason="the docker double starts the vLLM stand-in with /usr/bin/python3")

COMPOSE = """\
name: libra
services:
  vllm:
    image: vllm/vllm-openai:v0.8.5
    container_name: libra-vllm
    command: ["--model", "${{MODEL}}", "--served-model-name", "small", "--gpu-memory-utilization", "${{UTIL}}",
              "--max-model-len", "1024", "--port", "8000"]
    ports: ["127.0.0.1:{port}:8000"]
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8000/health"]
    deploy:
      resources:
        reservations:
          devices: [{{driver: nvidia, count: all, capabilities: [gpu]}}]
  ai-worker:
    image: libra/ai-worker:1.0.0
    depends_on:
      vllm: {{condition: service_healthy}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    """A fake host layout for the double: state, /etc/libra-test, share, daemon.json, hook."""

    def __init__(self, root: Path, gpu="rtx2070-8gb", hook=True):
        self.root = root
        self.port = free_port()
        self.share = root / "share"
        (self.share / "recordings").mkdir(parents=True)
        (self.share / "recordings" / "nvidia-smi").symlink_to(HERE / "recordings" / "nvidia-smi")
        shutil.copy(HERE / "vllm_standin.py", self.share / "vllm_standin.py")
        self.etc = root / "etc"
        self.etc.mkdir()
        if gpu:
            (self.etc / "gpu").write_text(gpu + "\n")
        self.hook = root / "nvidia-container-runtime-hook"
        if hook:
            self.hook.write_text("#!/bin/sh\n")
        self.project = root / "opt" / "libra"
        self.project.mkdir(parents=True)
        (self.project / "compose.yaml").write_text(COMPOSE.format(port=self.port))
        self.set_env(MODEL="Qwen/Qwen2.5-3B-Instruct-AWQ", UTIL="0.5")
        self.env = {"LIBRA_TEST_DOCKER_DIR": str(root / "docker"), "LIBRA_TEST_SHARE": str(self.share),
                    "LIBRA_TEST_ETC": str(self.etc), "LIBRA_TEST_DAEMON_JSON": str(root / "daemon.json"),
                    "LIBRA_TEST_NVIDIA_HOOK": str(self.hook), "LIBRA_TEST_FAIL_HEALTH": str(self.etc / "fail-health"),
                    "PATH": "/usr/bin:/bin"}

    def set_env(self, **values):
        (self.project / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    def docker(self, *args):
        return subprocess.run([sys.executable, str(DOCKER), *args], cwd=self.project, capture_output=True,
                              text=True, env=self.env, timeout=60, check=False)

    def compose(self, *args, dry_run=False):
        # exactly the argument shape docker_compose_v2 builds for Compose 2.27 (plain progress)
        base = ["compose", "--ansi", "never", "--progress", "plain", "--project-directory", str(self.project)]
        return self.docker(*base, *args)

    def up(self, *extra):
        return self.compose("up", "--detach", "--no-color", "--quiet-pull", *extra, "--")

    def state(self):
        return json.loads((self.root / "docker" / "state.json").read_text())

    def cleanup(self):
        try:
            st = self.state()
        except OSError:
            return
        for proj in st["projects"].values():
            for c in proj["services"].values():
                if c.get("pid"):
                    try:
                        os.kill(c["pid"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    yield h
    h.cleanup()


def events(res, dry_run=False):
    return parse_events(res.stderr.encode(), dry_run=dry_run, warn_function=None, nonzero_rc=res.returncode != 0)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_version_calls_the_collection_makes(host):
    v = json.loads(host.docker("version", "--format", "{{ json . }}").stdout)
    assert v["Server"]["ApiVersion"] == "1.45"
    assert json.loads(host.docker("compose", "version", "--format", "json").stdout) == {"version": "v2.27.1"}


def test_up_is_idempotent(host):
    first = host.up("--wait")
    assert first.returncode == 0, first.stderr
    assert has_changes(events(first))
    second = host.up("--wait")
    assert second.returncode == 0, second.stderr
    assert not has_changes(events(second)), second.stderr
    assert " Container libra-vllm  Running" in second.stderr


def test_changed_env_recreates_only_that_service(host):
    assert host.up().returncode == 0
    host.set_env(MODEL="Qwen/Qwen2.5-3B-Instruct-AWQ", UTIL="0.6")
    res = host.up()
    assert res.returncode == 0, res.stderr
    evs = {(e.resource_id, e.status) for e in events(res)}
    assert ("libra-vllm", "Recreate") in evs
    assert ("libra-ai-worker-1", "Running") in evs
    assert host.state()["projects"]["libra"]["services"]["vllm"]["gpu_memory_utilization"] == 0.6


def test_dry_run_changes_nothing(host):
    res = host.up("--dry-run")
    assert res.returncode == 0
    assert all(line.startswith("DRY-RUN MODE - ") for line in res.stderr.splitlines())
    assert has_changes(events(res, dry_run=True))
    ps = host.compose("ps", "--format", "json", "--all", "--no-trunc")
    assert ps.stdout == ""


def test_ps_json_stream_and_vllm_api(host):
    assert host.up("--wait").returncode == 0
    rows = [json.loads(line) for line in host.compose("ps", "--format", "json", "--all", "--no-trunc").stdout.splitlines()]
    vllm = next(r for r in rows if r["Service"] == "vllm")
    assert (vllm["Name"], vllm["State"], vllm["Health"]) == ("libra-vllm", "running", "healthy")
    assert vllm["Publishers"] == [{"URL": "127.0.0.1", "TargetPort": 8000, "PublishedPort": host.port, "Protocol": "tcp"}]
    status, body = get(f"http://127.0.0.1:{host.port}/v1/models")
    model = json.loads(body)["data"][0]
    assert (status, model["id"], model["root"], model["max_model_len"]) == (200, "small", "Qwen/Qwen2.5-3B-Instruct-AWQ", 1024)
    req = urllib.request.Request(f"http://127.0.0.1:{host.port}/v1/chat/completions", method="POST",
                                 data=json.dumps({"model": "small", "messages": [{"role": "user", "content": "hi"}]}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        chat = json.loads(resp.read())
    assert chat["object"] == "chat.completion" and chat["model"] == "small"
    assert chat["choices"][0]["finish_reason"] == "stop"


def test_down_stops_the_standin(host):
    assert host.up("--wait").returncode == 0
    pid = host.state()["projects"]["libra"]["services"]["vllm"]["pid"]
    res = host.compose("down")
    assert res.returncode == 0
    assert ("libra-vllm", "Removed") in {(e.resource_id, e.status) for e in events(res)}
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or b"vllm_standin" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert host.state()["projects"] == {}


def test_fail_health_knob_fails_the_wait(host):
    (host.etc / "fail-health").write_text("")
    res = host.up("--wait")
    assert res.returncode != 0
    assert "dependency failed to start: container libra-vllm is unhealthy" in res.stderr
    assert get(f"http://127.0.0.1:{host.port}/health")[0] == 503


def test_gpu_container_without_toolkit_is_refused(tmp_path):
    h = Host(tmp_path, hook=False)
    try:
        res = h.up()
        assert res.returncode != 0
        assert 'could not select device driver "nvidia" with capabilities: [[gpu]]' in res.stderr
        assert any(e.status == "Error" for e in events(res))
    finally:
        h.cleanup()


def test_vllm_refuses_to_start_when_free_memory_is_short(host):
    # A second engine at 0.5 next to one at 0.5 on 8 GB (1 MiB already in use): vLLM V1's startup check fails it
    # (message format from vllm-project/vllm#25837).
    (host.project / "second.yaml").write_text(
        COMPOSE.format(port=free_port()).replace("name: libra", "name: other").replace("libra-vllm", "other-vllm"))
    assert host.up("--wait").returncode == 0
    res = host.docker("compose", "--ansi", "never", "--progress", "plain", "--project-directory", str(host.project),
                      "--file", "second.yaml", "up", "--detach", "--wait", "--", "vllm")
    assert res.returncode != 0
    assert "container other-vllm exited (1)" in res.stderr
    log = host.docker("logs", "other-vllm").stdout
    assert "Free memory on device" in log and "less than desired GPU memory utilization (0.5" in log


def test_daemon_json_is_read_at_restart(host):
    def runtimes():
        return json.loads(host.docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert "nvidia" not in runtimes()
    (host.root / "daemon.json").write_text(json.dumps({"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}))
    assert "nvidia" not in runtimes()  # the running daemon has not re-read it
    assert host.docker("__daemon-restart").returncode == 0
    assert "nvidia" in runtimes()
    assert host.state()["daemon"]["restarts"] == 1


def test_config_quiet_validates_shape_only(host):
    assert host.compose("config", "--quiet").returncode == 0
    (host.project / "compose.yaml").write_text("version: '3'\n")
    res = host.compose("config", "--quiet")
    assert res.returncode != 0 and "services must be a mapping" in res.stderr


def test_api_key_is_enforced_on_v1_only(host):
    compose = (host.project / "compose.yaml").read_text().replace('"--port", "8000"]', '"--port", "8000", "--api-key", "${KEY}"]')
    (host.project / "compose.yaml").write_text(compose)
    host.set_env(MODEL="Qwen/Qwen2.5-3B-Instruct-AWQ", UTIL="0.5", KEY="s3cret")
    assert host.up("--wait").returncode == 0
    assert get(f"http://127.0.0.1:{host.port}/health")[0] == 200
    assert get(f"http://127.0.0.1:{host.port}/v1/models")[0] == 401
    req = urllib.request.Request(f"http://127.0.0.1:{host.port}/v1/models", headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def test_option_values_are_not_taken_for_services(host):
    # `up` typed by hand (no "--"): option values such as the wait timeout are not services
    res = host.compose("up", "--detach", "--pull", "missing", "--wait", "--wait-timeout", "30", "vllm")
    assert res.returncode == 0, res.stderr
    assert set(host.state()["projects"]["libra"]["services"]) == {"vllm"}
    logs = host.compose("logs", "--tail", "5", "vllm")
    assert logs.returncode == 0 and "libra-vllm  | " in logs.stdout


def test_fail_health_knob_can_target_one_config(host):
    # The knob names the new model: the stack with it is unhealthy, the previous one is healthy
    # again after a rollback (what the fleet's rescue path needs).
    (host.etc / "fail-health").write_text("Qwen2.5-7B-Instruct-AWQ\n")
    assert host.up("--wait").returncode == 0
    host.set_env(MODEL="Qwen/Qwen2.5-7B-Instruct-AWQ", UTIL="0.5")
    bad = host.up("--wait")
    assert bad.returncode != 0 and "container libra-vllm is unhealthy" in bad.stderr
    assert get(f"http://127.0.0.1:{host.port}/health")[0] == 503
    host.set_env(MODEL="Qwen/Qwen2.5-3B-Instruct-AWQ", UTIL="0.5")
    back = host.up("--wait")
    assert back.returncode == 0, back.stderr
    assert get(f"http://127.0.0.1:{host.port}/health")[0] == 200
