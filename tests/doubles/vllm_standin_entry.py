#!/usr/bin/python3
"""TEST STAND-IN: entry point of the vLLM stand-in image (tests/hosts/images.py).

The official image runs vLLM's OpenAI server with the compose file's `command:` as its
arguments. This entry point takes that command line, hands the options the HTTP stand-in
(vllm_standin.py) uses to it, and accepts the others: checking every rendered flag against the
real vLLM argument parser is a separate test (tests/vllm). It prints the options it was given,
so `docker logs` shows the command line the engine passed.

Knobs, read from files inside the container (set by the image's environment, see
tests/hosts/images.py): LIBRA_TEST_FAIL_START (exit 1 at start) and LIBRA_TEST_FAIL_HEALTH
(/health answers 503), each an empty file (every container) or substrings, one per line,
matched against this command line. SIGTERM (docker stop) ends the server at once; the server
runs as the container's PID 1, which has no default signal action.
"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_standin  # noqa: E402

PASSED = ("--host", "--port", "--model", "--served-model-name", "--max-model-len", "--api-key")


def knob_applies(path, ident):
    if not path or not os.path.exists(path):
        return False
    try:
        with open(path) as fh:
            lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    except OSError:
        return True
    return not lines or any(ln in ident for ln in lines)


def main(argv):
    ident = " ".join(argv)
    sys.stdout.write("libra-test vLLM stand-in, command line: %s\n" % ident)
    sys.stdout.flush()
    if knob_applies(os.environ.get("LIBRA_TEST_FAIL_START"), ident):
        sys.stderr.write("RuntimeError: the libra-test fail-start knob applies to this container\n")
        return 1
    ap = argparse.ArgumentParser(add_help=False)
    for flag in PASSED:
        ap.add_argument(flag)
    known, _others = ap.parse_known_args(argv)
    passed = ["--ident", ident]
    for flag in PASSED:
        value = getattr(known, flag.lstrip("-").replace("-", "_"))
        if value not in (None, ""):
            passed += [flag, value]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    return vllm_standin.main(passed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
