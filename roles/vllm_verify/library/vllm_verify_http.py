#!/usr/bin/python
"""vLLM's HTTP checks of every instance in one module run.

The role called ``uri`` three times per instance (GET /health, GET /v1/models, POST
/v1/chat/completions): a module run each, and the chat latency measured on the controller
around a whole module run. This module makes the same requests from the host, for every
instance, and times the chat request itself. It changes nothing.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: vllm_verify_http
short_description: GET /health, GET /v1/models and one chat completion per vLLM instance
description:
  - Read-only. For each of O(instances), in order, GET C(<base>/health), GET C(<base>/v1/models)
    and POST C(<base>/v1/chat/completions) (one user message, temperature 0), each with
    O(timeout); the last two carry C(Authorization: Bearer <api_key>) when O(api_key) is set.
  - A request answered with an HTTP error keeps its status and parsed JSON body; one that gets
    no answer has status C(-1) and the reason in C(msg).
options:
  instances:
    description: Each a dict with C(base) (C(http://host:port)) and C(served_model_name).
    type: list
    elements: dict
    required: true
  api_key:
    description: vLLM's API key; empty for none.
    type: str
    default: ""
    no_log: true
  prompt:
    description: The user message of the chat request.
    type: str
    required: true
  max_tokens:
    description: max_tokens of the chat request.
    type: int
    required: true
  timeout:
    description: Seconds each request may take.
    type: int
    default: 120
author: libra
"""

EXAMPLES = r"""
- name: Check every instance over HTTP
  vllm_verify_http:
    instances: [{base: "http://127.0.0.1:8000", served_model_name: qwen2.5-3b}]
    prompt: Say OK.
    max_tokens: 8
  register: http
"""

RETURN = r"""
results:
  description: One entry per instance, in order.
  type: list
  elements: dict
  returned: always
  contains:
    base: {description: The instance's base URL, as given., type: str}
    health: {description: "C(status) (and C(msg)) of GET /health.", type: dict}
    models: {description: "C(status), C(json) (and C(msg)) of GET /v1/models.", type: dict}
    chat: {description: "C(status), C(json) (and C(msg)) of the chat request.", type: dict}
    started: {description: The host's clock (seconds) right before the chat request., type: float}
    ended: {description: The host's clock right after its answer was read., type: float}
"""

import json
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule


def request(url: str, timeout: int, headers: dict, body: dict | None = None) -> dict:
    """status and parsed JSON (None when the body is not JSON) of one request; -1 and msg when
    nothing answered."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, headers=dict(headers, **({"Content-Type": "application/json"} if data else {})),
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return {"status": -1, "json": None, "msg": f"Request failed: {getattr(exc, 'reason', exc)}"}
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except ValueError:
        parsed = None
    return {"status": status, "json": parsed, "msg": f"HTTP {status}"}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "instances": {"type": "list", "elements": "dict", "required": True},
            "api_key": {"type": "str", "default": "", "no_log": True},
            "prompt": {"type": "str", "required": True},
            "max_tokens": {"type": "int", "required": True},
            "timeout": {"type": "int", "default": 120},
        },
        supports_check_mode=True,
    )
    params = module.params
    auth = {"Authorization": f"Bearer {params['api_key']}"} if params["api_key"] else {}
    results = []
    for instance in params["instances"]:
        base = str(instance["base"]).rstrip("/")
        health = request(f"{base}/health", params["timeout"], {})
        health.pop("json")
        models = request(f"{base}/v1/models", params["timeout"], auth)
        chat_body = {"model": instance["served_model_name"], "messages": [{"role": "user", "content": params["prompt"]}],
                     "max_tokens": params["max_tokens"], "temperature": 0}
        started = time.time()
        chat = request(f"{base}/v1/chat/completions", params["timeout"], auth, chat_body)
        ended = time.time()
        results.append({"base": base, "health": health, "models": models, "chat": chat, "started": started, "ended": ended})
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
