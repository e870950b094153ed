"""The nvidia-smi double answers like nvidia-smi, from its recordings.

Each recording (tests/doubles/recordings/nvidia-smi/*.json) cites the GitHub issue its output
was pasted in; these tests check that the parsed fields agree with the raw recorded text, and
that the double's CSV / -L / compute-apps answers are built from those fields.
Runs on the controller: the double's paths are pointed at a temporary directory.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE / "recordings" / "nvidia-smi"
DOUBLE = HERE / "bin" / "nvidia-smi"
NAMES = sorted(p.stem for p in RECORDINGS.glob("*.json"))
QUERY = "index,name,uuid,memory.total,memory.used,memory.free,compute_cap,driver_version"


def load(name):
    return json.loads((RECORDINGS / f"{name}.json").read_text())


def engine_api(sock_path, containers):
    """Serves GET /containers/json and /containers/{id}/json on a unix socket with the fields the
    double reads, shaped as Docker Engine API v1.41 answers them (docs.docker.com/engine/api/
    v1.41/#operation/ContainerInspect: State.Running, State.Pid, Args, HostConfig.DeviceRequests
    with Driver and DeviceIDs)."""
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler

    by_id = {c["Id"]: c for c in containers}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def address_string(self):
            return "engine"

        def do_GET(self):
            if self.path.startswith("/containers/json"):
                body = [{"Id": c["Id"]} for c in containers if c["State"]["Running"]]
            elif self.path.split("/")[2] in by_id:
                body = by_id[self.path.split("/")[2]]
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    srv = Server(str(sock_path), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _container(cid, running, pid, args, gpu_ids):
    reqs = [{"Driver": "nvidia", "Count": 0, "DeviceIDs": gpu_ids, "Capabilities": [["gpu"]]}] if gpu_ids else []
    return {"Id": cid, "Args": args, "State": {"Running": running, "Pid": pid}, "HostConfig": {"DeviceRequests": reqs}}


def run(tmp_path, name, *args, docker_state=None):
    share = tmp_path / "share"
    (share / "recordings").mkdir(parents=True, exist_ok=True)
    link = share / "recordings" / "nvidia-smi"
    if not link.exists():
        link.symlink_to(RECORDINGS)
    gpu_file = tmp_path / "gpu"
    if name is not None:
        gpu_file.write_text(name + "\n")
    sock = tmp_path / "docker.sock"
    srv = engine_api(sock, docker_state) if docker_state is not None else None
    env = {"LIBRA_TEST_SHARE": str(share), "LIBRA_TEST_GPU_FILE": str(gpu_file),
           "LIBRA_TEST_DOCKER_SOCKET": str(sock), "PATH": "/usr/bin:/bin"}
    try:
        return subprocess.run([sys.executable, str(DOUBLE), *args], env=env, capture_output=True, text=True, check=False)
    finally:
        if srv is not None:
            srv.shutdown()
            srv.server_close()
            sock.unlink()


def test_expected_recordings_exist():
    # The cards the project targets: 8 GB RTX 2070, 12 GB RTX 3060, T4, a 24 GB card, multi-GPU.
    for name in ("rtx2070-8gb", "rtx3060-12gb", "t4-16gb", "rtx4090-24gb", "multi-2080ti22gb-titanrtx"):
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_recording_cites_its_source_and_agrees_with_raw_text(name):
    rec = load(name)
    assert rec["source"].startswith("https://github.com/"), rec["source"]
    raw = rec["raw"]
    assert rec["driver_version"] in raw
    for gpu in rec["gpus"]:
        assert gpu["name"] in raw
        assert re.fullmatch(r"\d+\.\d", gpu["compute_cap"])
        assert re.fullmatch(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", gpu["uuid"])
        if gpu["uuid"] not in raw:
            assert "uuid" in rec["derived"], f"{name}: UUID neither recorded nor marked derived"
        if f"{gpu['memory_total_mib']}MiB" not in raw.replace(" ", "") and str(gpu["memory_total_mib"]) not in raw:
            assert "memory_total_mib" in rec["derived"], f"{name}: memory total neither recorded nor marked derived"
    # a table recording: every "used / total" pair in it belongs to a recorded GPU
    totals = [int(t) for t in re.findall(r"\|\s+\d+MiB /\s+(\d+)MiB \|", raw)]
    if totals:
        assert totals == [g["memory_total_mib"] for g in rec["gpus"]]


NEW_DRIVERS = [n for n in NAMES if int(load(n)["driver_version"].split(".")[0]) >= 510]
OLD_DRIVERS = [n for n in NAMES if n not in NEW_DRIVERS]


def test_old_driver_recording_exists():
    assert OLD_DRIVERS == ["t4-16gb-driver460"]


@pytest.mark.parametrize("name", OLD_DRIVERS)
def test_old_drivers_refuse_compute_cap(tmp_path, name):
    # 470.x and older have no compute_cap query field (huggingface/candle#733, NVIDIA/TensorRT-LLM#735)
    res = run(tmp_path, name, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits")
    assert res.returncode == 2
    assert res.stdout.startswith('Field "compute_cap" is not a valid field to query.')
    ok = run(tmp_path, name, "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader,nounits")
    assert ok.stdout.strip() == "0, Tesla T4, 15360, 460.32.03"


@pytest.mark.parametrize("name", NEW_DRIVERS)
def test_query_gpu_csv_matches_recording(tmp_path, name):
    rec = load(name)
    res = run(tmp_path, name, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == len(rec["gpus"])
    for line, gpu in zip(lines, rec["gpus"]):
        idx, gname, uuid, total, used, free, cc, driver = [f.strip() for f in line.split(",")]
        assert (int(idx), gname, uuid, int(total), cc, driver) == (
            gpu["index"], gpu["name"], gpu["uuid"], gpu["memory_total_mib"], gpu["compute_cap"], rec["driver_version"])
        assert int(used) + int(free) == int(total)
        assert int(used) == gpu["memory_used_idle_mib"]


@pytest.mark.parametrize("fmt,header,value", [
    # nvidia-smi prints the unit in the header always and in the value unless nounits.
    ("csv", "memory.total [MiB], name", "8192 MiB, NVIDIA GeForce RTX 2070"),
    ("csv,nounits", "memory.total [MiB], name", "8192, NVIDIA GeForce RTX 2070"),
    ("csv,noheader", None, "8192 MiB, NVIDIA GeForce RTX 2070"),
])
def test_csv_format_options(tmp_path, fmt, header, value):
    res = run(tmp_path, "rtx2070-8gb", "--query-gpu=memory.total,name", f"--format={fmt}")
    lines = res.stdout.splitlines()
    assert lines == ([header] if header else []) + [value]


def test_list_gpus(tmp_path):
    res = run(tmp_path, "multi-2080ti22gb-titanrtx", "-L")
    rec = load("multi-2080ti22gb-titanrtx")
    assert res.stdout.splitlines() == [f"GPU {g['index']}: {g['name']} (UUID: {g['uuid']})" for g in rec["gpus"]]


def test_select_one_gpu_with_i(tmp_path):
    res = run(tmp_path, "multi-2080ti22gb-titanrtx", "-i", "1", "--query-gpu=index,name", "--format=csv,noheader")
    assert res.stdout.splitlines() == ["1, NVIDIA TITAN RTX"]


def test_no_driver_without_recording(tmp_path):
    res = run(tmp_path, None)
    assert res.returncode == 9
    assert "couldn't communicate with the NVIDIA driver" in res.stdout


def test_bad_field_is_refused(tmp_path):
    res = run(tmp_path, "rtx2070-8gb", "--query-gpu=memory.bogus", "--format=csv")
    assert res.returncode == 2
    assert 'Field "memory.bogus" is not a valid field to query.' in res.stdout


def test_vllm_processes_take_utilization_times_total(tmp_path):
    # Two vLLM containers on one 8 GB card (the dual tier's shape) at 0.30 and 0.45.
    state = [
        _container("a1", True, 101, ["--model", "m", "--gpu-memory-utilization", "0.30"], ["0"]),
        _container("b2", True, 102, ["--model", "m", "--gpu-memory-utilization", "0.45"], ["0"]),
        _container("c3", True, 103, [], []),  # the worker: no GPU request
        _container("d4", False, 0, ["--gpu-memory-utilization", "0.9"], ["0"]),  # stopped
    ]
    rec = load("rtx2070-8gb")
    uuid = rec["gpus"][0]["uuid"]
    apps = run(tmp_path, "rtx2070-8gb", "--query-compute-apps=pid,process_name,used_memory,gpu_uuid",
               "--format=csv,noheader,nounits", docker_state=state)
    assert apps.stdout.splitlines() == [f"101, python3, {round(0.30 * 8192)}, {uuid}",
                                        f"102, python3, {round(0.45 * 8192)}, {uuid}"]
    mem = run(tmp_path, "rtx2070-8gb", "--query-gpu=memory.used,memory.free", "--format=csv,noheader,nounits",
              docker_state=state)
    used = 1 + round(0.30 * 8192) + round(0.45 * 8192)
    assert mem.stdout.strip() == f"{used}, {8192 - used}"
    table = run(tmp_path, "rtx2070-8gb", docker_state=state)
    assert f"{used}MiB /   8192MiB" in table.stdout
    assert "Driver Version: 510.68.02" in table.stdout
