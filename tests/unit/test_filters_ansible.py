"""One smoke test: every filter of filter_plugins/vllm.py called through real Ansible.

A small playbook (run from a temporary directory, with the project's ansible.cfg) calls each
filter, writes the results as JSON, and catches one planner error to check that it surfaces as
an Ansible filter error with the planner's message (naming the filter and the field).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK_BIN = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or shutil.which("ansible-playbook")

# nvidia-smi query lines of a two-GPU host (weicj/2080Ti-LLM-Toolbox#2) as the test double
# replays it with one vLLM process at utilization 0.25 on GPU 1 (0.25 x 24576 = 6144 MiB).
SMI = "0, NVIDIA GeForce RTX 2080 Ti, GPU-4c6e18ab-d3c7-5f27-9296-e661dd88555f, 22528, 1, 22527, 7.5, 595.84\\n1, NVIDIA TITAN RTX, GPU-e1128e34-8d8e-500b-a00a-f85535952e99, 24576, 6145, 18431, 7.5, 595.84"
APPS = "4242, VLLM::EngineCore, 6144, GPU-e1128e34-8d8e-500b-a00a-f85535952e99"

PLAY = f"""
- name: Filters smoke test
  hosts: localhost
  gather_facts: false
  vars:
    gpu: "{{{{ 'rtx3060' | vllm_gpu_preset }}}}"
    instance: {{model: Qwen/Qwen2.5-3B-Instruct-AWQ, gpu_memory_utilization: 0.5, max_model_len: 2048}}
    gpus: "{{{{ '{SMI}' | vllm_parse_nvidia_smi }}}}"
  tasks:
    - name: Call every filter
      ansible.builtin.set_fact:
        out:
          preset: "{{{{ gpu }}}}"
          explicit: "{{{{ none | vllm_gpu_preset(12288, '8.6') }}}}"
          gpus: "{{{{ gpus }}}}"
          selected: "{{{{ gpus | vllm_select_gpu(1) }}}}"
          apps: "{{{{ '{APPS}' | vllm_parse_compute_apps }}}}"
          for_plan: "{{{{ (gpus | vllm_select_gpu(1)) | vllm_gpu_for_plan('{APPS}' | vllm_parse_compute_apps) }}}}"
          plan: "{{{{ instance | vllm_memory_plan(gpu) }}}}"
          multi: "{{{{ [instance, instance] | vllm_multi_plan(gpu) }}}}"
          solved: "{{{{ [instance] | vllm_solve_utilization(gpu, 2, 0.25) }}}}"
          validated: "{{{{ {{'tier': 'auto'}} | vllm_validate('inventory') }}}}"
          auto: "{{{{ none | vllm_tier_resolve('auto', gpu) }}}}"
          table: "{{{{ (none | vllm_tier_resolve('single', gpu)) | vllm_plan_table }}}}"
    - name: A bad override is refused
      block:
        - name: Resolve with a typo'd knob
          ansible.builtin.set_fact:
            bad: "{{{{ none | vllm_tier_resolve('single', gpu, overrides={{'single': {{'max_model_length': 1}}}}) }}}}"
      rescue:
        - name: Keep the error
          ansible.builtin.set_fact:
            error: "{{{{ ansible_failed_result.msg }}}}"
    - name: Write the results
      ansible.builtin.copy:
        content: "{{{{ out | combine({{'error': error | default('')}}) | to_json }}}}"
        dest: "{{{{ out_file }}}}"
        mode: "0644"
"""


@pytest.mark.skipif(PLAYBOOK_BIN is None, reason="ansible-playbook is not installed")
def test_filters_through_ansible(tmp_path):
    (tmp_path / "smoke.yml").write_text(PLAY)
    out_file = tmp_path / "out.json"
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FILTER_PLUGINS=os.path.join(ROOT, "filter_plugins"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [PLAYBOOK_BIN, "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"out_file={out_file}", str(tmp_path / "smoke.yml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = json.loads(out_file.read_text())

    assert out["preset"]["memory_total_mib"] == 12288 and out["preset"]["compute_capability"] == "8.6"
    assert out["explicit"]["memory_total_mib"] == 12288
    assert [g["memory_total_mib"] for g in out["gpus"]] == [22528, 24576]
    assert out["selected"]["name"] == "NVIDIA TITAN RTX"
    assert out["apps"] == [{"pid": 4242, "process_name": "VLLM::EngineCore", "used_memory_mib": 6144, "gpu_uuid": "GPU-e1128e34-8d8e-500b-a00a-f85535952e99"}]
    assert out["selected"]["memory_free_mib"] == 18431
    assert out["for_plan"]["memory_free_mib"] == 24576 - 1  # the vLLM process's 6144 MiB count as free
    for key in ("weights_gib", "kv_cache_gib", "kv_cache_tokens", "max_concurrency", "fits", "reasons"):
        assert key in out["plan"]
    assert out["plan"]["fits"] is True
    assert len(out["multi"]["instances"]) == 2
    assert len(out["solved"]) == 1 and 0 < out["solved"][0] <= 1
    assert out["validated"] == {"tier": "auto"}
    assert out["auto"]["requested"] == "auto" and out["auto"]["fits"] is True
    assert any(line.startswith("== tier single on NVIDIA GeForce RTX 3060") for line in out["table"])
    assert "vllm_tier_resolve: field 'vllm_tier_overrides.single.max_model_length'" in out["error"]
    assert "did you mean 'max_model_len'" in out["error"]


# What loading a filter plugin file may import: Ansible loads every plugin file in each worker
# process that templates a filter (nearly every task), so lib/'s heavy packages wait until a
# filter runs. Measured: libra_planner (jsonschema with it) took ~0.14 s per load, a third of
# the controller's CPU in a one-host provisioning run.
_LOAD_PROBE = """
import glob, importlib.util, json, sys
import ansible.plugins.filter.core  # what a worker already has
before = set(sys.modules)
for path in sorted(glob.glob(sys.argv[1] + '/*.py')):
    spec = importlib.util.spec_from_file_location('probe_' + path.rsplit('/', 1)[1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.FilterModule().filters()
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_loading_the_filter_plugins_imports_nothing_heavy():
    proc = subprocess.run([sys.executable, "-c", _LOAD_PROBE, os.path.join(ROOT, "filter_plugins")],
                          capture_output=True, text=True, check=True)
    loaded = json.loads(proc.stdout)
    heavy = [name for name in loaded if name.split(".")[0] in ("libra_planner", "libra_picture", "libra_monitoring", "jsonschema", "referencing", "yaml")]
    assert heavy == [], heavy
