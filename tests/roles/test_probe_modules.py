"""The roles' read-only probe modules, run by Ansible itself (ad hoc, connection local), and
their parsers on recorded file formats.

roles/host_memory/library/host_memory_probe.py and roles/nvidia_toolkit/library/
nvidia_toolkit_probe.py replace several module runs each (stat, slurp, command, setup). The
Molecule, fleet and minimal-Debian tests run them on Debian hosts; these cases pin what those do
not reach: a swap file with and without its signature, a missing directory and command, an
os-release of another distribution, a missing daemon.json.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest
from adhoc import BIN, REPO, run_module


def _load(role: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "roles" / role / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(role: str, name: str, args: dict, *flags: str) -> dict:
    return run_module(role, name, args, *flags)[0]


# --- host_memory_probe ------------------------------------------------------------------------

# /proc/swaps as proc(5) documents it: a header line, then one line per active swap area.
PROC_SWAPS = """Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/dev/sda2                               partition\t8388604\t\t0\t\t-2
/libra.swap                             file\t\t4194300\t\t0\t\t-3
"""


def test_active_swaps_are_the_file_names_under_the_header():
    probe = _load("host_memory", "host_memory_probe")
    assert probe.active_swaps(PROC_SWAPS) == ["/dev/sda2", "/libra.swap"]
    assert probe.active_swaps(PROC_SWAPS.splitlines()[0] + "\n") == []


def test_swap_file_absent_then_signed(tmp_path):
    swap = tmp_path / "libra.swap"
    args = {"swap_file": str(swap), "commands": ["sh", "libra-no-such-command"], "read_swaps": False}
    absent = _run("host_memory", "host_memory_probe", args, "--check")
    assert absent["changed"] is False and not absent.get("failed"), absent
    assert "MemTotal:" in absent["meminfo"]
    assert absent["missing_commands"] == ["libra-no-such-command"]
    assert absent["swap_dir_isdir"] is True
    assert absent["swap_file"] == {"exists": False, "size": 0} and absent["signature"] == ""
    assert absent["active_swaps"] == []
    assert not swap.exists()  # read-only, check mode or not

    # a page whose last 10 bytes are mkswap's signature (util-linux libblkid swap.c)
    swap.write_bytes(b"\0" * 4086 + b"SWAPSPACE2" + b"\0" * 4096)
    signed = _run("host_memory", "host_memory_probe", args)
    assert signed["swap_file"] == {"exists": True, "size": 8192} and signed["signature"] == "SWAPSPACE2"

    swap.write_bytes(b"\0" * 8192)  # zero-filled, never formatted
    assert _run("host_memory", "host_memory_probe", args)["signature"] == "\0" * 10


def test_missing_directory_is_reported(tmp_path):
    result = _run("host_memory", "host_memory_probe", {"swap_file": str(tmp_path / "absent" / "libra.swap"), "read_swaps": True})
    assert result["swap_dir_isdir"] is False and result["swap_file"]["exists"] is False
    assert isinstance(result["active_swaps"], list)


# --- nvidia_toolkit_probe ---------------------------------------------------------------------

# /etc/os-release of Debian 12 (base-files 12.4+deb12u5), Ubuntu 24.04 (base-files 13ubuntu10)
# and Linux Mint 22.1, as those releases ship it (trimmed to the fields read).
DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n'
UBUNTU_24 = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
MINT_22 = 'NAME="Linux Mint"\nVERSION="22.1 (Xia)"\nID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="22.1"\n'


@pytest.mark.parametrize("text, expected", [
    (DEBIAN_12, {"distribution": "Debian", "version": "12", "major_version": "12"}),
    (UBUNTU_24, {"distribution": "Ubuntu", "version": "24.04", "major_version": "24"}),
    (MINT_22, {"distribution": "Linux Mint", "version": "22.1", "major_version": "22"}),
    ("# no os-release fields\n", {"distribution": "", "version": "", "major_version": ""}),
])
def test_distribution_from_os_release(text, expected):
    probe = _load("nvidia_toolkit", "nvidia_toolkit_probe")
    assert probe.distribution(probe.parse_os_release(text)) == expected


def test_daemon_json_and_packages(tmp_path):
    daemon = tmp_path / "daemon.json"
    args = {"daemon_json": str(daemon), "packages": ["bash", "libra-no-such-package"]}
    missing = _run("nvidia_toolkit", "nvidia_toolkit_probe", args, "--check")
    assert missing["changed"] is False and not missing.get("failed"), missing
    assert missing["daemon_json"] == {"exists": False, "content": ""}
    assert not daemon.exists()
    daemon.write_text('{"log-driver": "json-file"}\n')
    present = _run("nvidia_toolkit", "nvidia_toolkit_probe", args)
    assert present["daemon_json"] == {"exists": True, "content": '{"log-driver": "json-file"}\n'}
    assert present["distribution"] and present["major_version"]
    assert present["docker"] == (shutil.which("docker") or "")
    # make test installs docker.io with apt: dpkg-query is on this controller
    assert shutil.which("dpkg-query"), "no dpkg-query: make test runs on a Debian-based controller"
    (bash,) = present["packages"]  # the unknown package gives no line
    assert bash.startswith("bash=") and bash.endswith(" installed"), present["packages"]


# --- vllm_stack_ports -------------------------------------------------------------------------

def test_ports_nothing_listens_then_one_answers_without_docker(tmp_path):
    import socket
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refuses connections
        open_port, closed_port = listening.getsockname()[1], closed.getsockname()[1]
        quiet = _run("vllm_stack", "vllm_stack_ports", {"address": "127.0.0.1", "ports": [closed_port], "project": "libra"})
        assert quiet["changed"] is False and not quiet.get("failed"), quiet
        assert quiet["open"] == [] and quiet["taken"] == []
        # An open port is checked against the stack's containers: without a docker command the
        # module stops and says so (with one, the Molecule tier-lite port fault covers the rest).
        env_path = os.environ["PATH"]
        try:
            os.environ["PATH"] = str(BIN)  # ansible's own directory, no docker there
            held = _run("vllm_stack", "vllm_stack_ports", {"address": "127.0.0.1", "ports": [open_port, closed_port], "project": "libra"})
        finally:
            os.environ["PATH"] = env_path
        assert held.get("failed") is True and "docker" in held["msg"], held


# --- vllm_verify_http -------------------------------------------------------------------------

def test_http_checks_of_an_instance_that_does_not_answer():
    import socket
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refuses connections
        port = closed.getsockname()[1]
        result = _run("vllm_verify", "vllm_verify_http", {
            "instances": [{"base": f"http://127.0.0.1:{port}", "served_model_name": "m"}], "api_key": "sk-libra-test-key",
            "prompt": "Say OK.", "max_tokens": 4, "timeout": 5}, "--check")
    assert result["changed"] is False and not result.get("failed"), result
    (one,) = result["results"]
    assert one["base"] == f"http://127.0.0.1:{port}"
    assert [one[k]["status"] for k in ("health", "models", "chat")] == [-1, -1, -1]
    assert "Request failed" in one["chat"]["msg"] and one["ended"] >= one["started"]
    assert "sk-libra-test-key" not in json.dumps(result)
