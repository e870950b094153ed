"""The stand-in NVIDIA apt repository and its nvidia-ctk.

nvidia-ctk `runtime configure --runtime=docker` must MERGE the nvidia runtime into an existing
daemon.json and keep the operator's keys, like the real tool (its output shape as pasted in
NVIDIA/nvidia-container-toolkit#378). The operator files below are real daemon.json contents
pasted in GitHub issues.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import apt_mirror  # noqa: E402  (the module under test lives beside this file)

NVIDIA_RUNTIME = {"args": [], "path": "nvidia-container-runtime"}


@pytest.fixture(scope="module")
def nvidia_ctk(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctk") / "nvidia-ctk"
    path.write_text(apt_mirror.NVIDIA_CTK.replace("@VERSION@", "1.17.8-1").replace("@UPSTREAM@", "1.17.8"))
    return path


def ctk(script, *args):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("operator_config,source", [
    ({}, "no daemon.json yet"),
    ({"data-root": "/your/custom/location", "default-runtime": "nvidia",
      "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}}},
     "https://github.com/NVIDIA/nvidia-docker/issues/1651"),
    ({"insecure-registries": ["10.0.0.1:5000"], "node-generic-resources": ["gpu=GPU-d53fc9bd"]},
     "https://github.com/mesh-iit/appsAway/pull/221"),
    ({"registry-mirrors": ["https://mytfd7zc.mirror.aliyuncs.com"], "graph": "/data/dockerdata",
      "runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}}},
     "https://github.com/NVIDIA/nvidia-docker/issues/542 (plus a second runtime)"),
    ({"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}, "live-restore": True},
     "Docker's documented daemon.json logging keys"),
])
def test_configure_merges_and_keeps_operator_keys(tmp_path, nvidia_ctk, operator_config, source):
    cfg = tmp_path / "daemon.json"
    if operator_config:
        cfg.write_text(json.dumps(operator_config, indent=2))
    res = ctk(nvidia_ctk, "runtime", "configure", "--runtime=docker", f"--config={cfg}")
    assert res.returncode == 0, res.stderr
    merged = json.loads(cfg.read_text())
    assert merged["runtimes"]["nvidia"] == NVIDIA_RUNTIME, source
    for key, value in operator_config.items():
        if key == "runtimes":
            for name, spec in value.items():
                if name != "nvidia":
                    assert merged["runtimes"][name] == spec, source
        else:
            assert merged[key] == value, source
    assert set(merged) == set(operator_config) | {"runtimes"}
    assert cfg.read_text().startswith("{\n    \""), "4-space indentation, as the real tool writes"
    # a second run gives the same content (the real tool rewrites the file every time)
    before = cfg.read_text()
    assert ctk(nvidia_ctk, "runtime", "configure", "--runtime=docker", f"--config={cfg}").returncode == 0
    assert cfg.read_text() == before


def test_set_as_default_and_dry_run(tmp_path, nvidia_ctk):
    cfg = tmp_path / "daemon.json"
    cfg.write_text('{"log-driver": "json-file"}')
    res = ctk(nvidia_ctk, "runtime", "configure", "--runtime=docker", "--config", str(cfg), "--set-as-default", "--dry-run")
    assert json.loads(res.stdout) == {"default-runtime": "nvidia", "log-driver": "json-file",
                                      "runtimes": {"nvidia": NVIDIA_RUNTIME}}
    assert cfg.read_text() == '{"log-driver": "json-file"}', "--dry-run must not write"


def test_invalid_json_is_refused_untouched(tmp_path, nvidia_ctk):
    cfg = tmp_path / "daemon.json"
    cfg.write_text('{"log-driver": ')
    res = ctk(nvidia_ctk, "runtime", "configure", "--runtime=docker", f"--config={cfg}")
    assert res.returncode != 0
    assert cfg.read_text() == '{"log-driver": '


def test_version(nvidia_ctk):
    assert ctk(nvidia_ctk, "--version").stdout.splitlines()[0] == "NVIDIA Container Toolkit CLI version 1.17.8"


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("dpkg-deb", "apt-ftparchive", "gpg", "gpgv")),
                    reason="building the mirror needs dpkg-deb, apt-ftparchive (apt-utils) and gpg")
def test_repository_is_signed_and_lists_pinned_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("LIBRA_TEST_CACHE", str(tmp_path / "cache"))
    root = apt_mirror.build()
    flat = root / "stable" / "deb" / "amd64"
    keyring = tmp_path / "key.gpg"
    subprocess.run(["gpg", "--batch", "--dearmor", "--output", str(keyring), str(root / "gpgkey")], check=True)
    verify = subprocess.run(["gpgv", "--keyring", str(keyring), str(flat / "InRelease")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    packages = (flat / "Packages").read_text().split("\n\n")
    found = {(p.split("Package: ")[1].split("\n")[0], p.split("Version: ")[1].split("\n")[0]) for p in packages if p.strip()}
    assert found == {(name, v) for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                            "libnvidia-container-tools", "libnvidia-container1")
                     for v in apt_mirror.VERSIONS}
    toolkit = next(p for p in packages if "Package: nvidia-container-toolkit\n" in p and "Version: 1.17.8-1" in p)
    assert "Depends: nvidia-container-toolkit-base (= 1.17.8-1), libnvidia-container-tools (>= 1.17.8-1)" in toolkit
