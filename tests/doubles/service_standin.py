#!/usr/bin/python3
"""TEST STAND-IN for the stack's other containers (images built by tests/hosts/images.py).

    service_standin.py idle                      the ai-worker stand-in: does nothing until stopped
    service_standin.py prometheus --port 9090    answers Prometheus' GET /-/healthy and /-/ready
    service_standin.py grafana --port 3000       answers Grafana's GET /api/health

Sources of the answers: Prometheus' management API (prometheus.io/docs/prometheus/latest/
management_api/: /-/healthy and /-/ready answer 200) and Grafana's HTTP API
(grafana.com/docs/grafana/latest/developers/http_api/other/: GET /api/health answers 200 with
a JSON body holding "database": "ok"). Not Prometheus, not Grafana: they only let Compose start,
publish and stop a container of that service. SIGTERM ends them at once (they run as PID 1).
"""
import argparse
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWERS = {
    "prometheus": {"/-/healthy": (200, "text/plain", b"Prometheus Server is Healthy.\n"),
                   "/-/ready": (200, "text/plain", b"Prometheus Server is Ready.\n")},
    "grafana": {"/api/health": (200, "application/json",
                                json.dumps({"database": "ok", "version": "libra-test-standin"}).encode())},
}


def serve(kind, port):
    answers = ANSWERS[kind]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stdout.write("%s %s\n" % (kind, fmt % args))
            sys.stdout.flush()

        def do_GET(self):
            code, ctype, body = answers.get(self.path.split("?")[0], (404, "text/plain", b"404 page not found\n"))
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    srv.daemon_threads = True
    sys.stdout.write("%s stand-in listening on :%d\n" % (kind, port))
    sys.stdout.flush()
    srv.serve_forever()


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["idle", *ANSWERS])
    ap.add_argument("--port", type=int, default=0)
    # an exporter's own flags (node-exporter's --path.procfs=...) are not the stand-in's business
    args, _ = ap.parse_known_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.kind == "idle":
        sys.stdout.write("ai-worker stand-in: idle\n")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    serve(args.kind, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
