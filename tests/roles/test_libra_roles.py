"""Table tests of lib/libra_roles: the data the roles and the rollout build, without Ansible.

Expected values are written out by hand from the rule each function implements (the compose
.env naming, the backup-pair rule, the documented max_fail_percentage rule ...), never computed
by the code under test.
"""
from __future__ import annotations

import pytest

from libra_roles import inputs, memory, rollout, stack, verify

TWO = [
    {"name": "small", "service": "vllm-small", "model": "Qwen/A", "served_model_name": "a", "port": 8001,
     "gpu_memory_utilization": 0.3, "max_model_len": 2048, "max_num_batched_tokens": 2048, "max_num_seqs": 8,
     "dtype": "float16", "quantization": "awq", "kv_cache_dtype": "fp8"},
    {"name": "large", "service": "vllm-large", "model": "Qwen/B", "served_model_name": "b", "port": 8002,
     "gpu_memory_utilization": 0.6, "max_model_len": 4096, "max_num_batched_tokens": 4096, "max_num_seqs": 16,
     "dtype": "bfloat16", "quantization": None, "kv_cache_dtype": "auto"},
]


# --- vllm_stack -------------------------------------------------------------------------------

def test_instances_env_names_and_suffixes():
    env = stack.instances_env(TWO, 8000)
    assert env == {
        "VLLM_MODEL": "Qwen/A", "SERVED_MODEL_NAME": "a", "VLLM_PORT": "8001", "GPU_MEMORY_UTILIZATION": "0.3",
        "MAX_MODEL_LEN": "2048", "MAX_NUM_BATCHED_TOKENS": "2048", "MAX_NUM_SEQS": "8", "DTYPE": "float16",
        "QUANTIZATION": "awq", "KV_CACHE_DTYPE": "fp8",
        "VLLM_MODEL_2": "Qwen/B", "SERVED_MODEL_NAME_2": "b", "VLLM_PORT_2": "8002", "GPU_MEMORY_UTILIZATION_2": "0.6",
        "MAX_MODEL_LEN_2": "4096", "MAX_NUM_BATCHED_TOKENS_2": "4096", "MAX_NUM_SEQS_2": "16", "DTYPE_2": "bfloat16",
        "VLLM_URL_2": "http://vllm-large:8000/v1",
    }


def test_instances_env_names_a_missing_knob():
    broken = [dict(TWO[0])]
    del broken[0]["max_num_seqs"]
    with pytest.raises(ValueError, match="small has no max_num_seqs"):
        stack.instances_env(broken, 8000)


@pytest.mark.parametrize("pinned,expected", [
    (None, None),                      # not pinned: no entry, so no --kv-cache-memory-bytes
    (1073741824, "1073741824"),        # pinned: the exact integer, no float formatting
])
def test_instances_env_kv_cache_memory_bytes(pinned, expected):
    inst = [dict(TWO[0], kv_cache_memory_bytes=pinned)]
    assert stack.instances_env(inst, 8000).get("KV_CACHE_MEMORY_BYTES") == expected


@pytest.mark.parametrize("bad", [0, -5, 1.5, "1g", True])
def test_instances_env_refuses_a_bad_kv_cache_memory_bytes(bad):
    with pytest.raises(ValueError, match="kv_cache_memory_bytes must be a positive integer"):
        stack.instances_env([dict(TWO[0], kv_cache_memory_bytes=bad)], 8000)


def test_service_urls():
    assert stack.service_urls(TWO, 8000) == ["http://vllm-small:8000/v1", "http://vllm-large:8000/v1"]


def _staged(name, exists, installed=None, checksum="new"):
    """One file of the staging module's result: the staged checksum and the installed file's."""
    return {"name": name, "checksum": checksum,
            "compare": {"exists": exists, "checksum": installed or ""}}


@pytest.mark.parametrize("staged,expected", [
    # first install: nothing replaced
    ([_staged("c.yml", False, checksum="1"), _staged(".env", False, checksum="2")], []),
    # same content: nothing replaced
    ([_staged("c.yml", True, "1", "1"), _staged(".env", True, "2", "2")], []),
    # .env changed only
    ([_staged("c.yml", True, "1", "1"), _staged(".env", True, "x", "2")], [".env"]),
])
def test_replaced_files(staged, expected):
    assert stack.replaced_files(staged) == expected


@pytest.mark.parametrize("exists,replaced,old,expected", [
    # .env changed: compose file and .env are kept as a pair
    ([True, True, True], [".env"], [], ["c.yml", ".env"]),
    # only the monitoring config changed: it alone
    ([True, True, True], ["prometheus/prometheus.yml"], [], ["prometheus/prometheus.yml"]),
    # switching stack kind: the old compose file joins the pair, first
    ([False, True, False], [".env"], ["old.yml"], ["old.yml", ".env"]),
    # nothing changed: nothing kept
    ([True, True, True], [], [], []),
])
def test_backup_files(exists, replaced, old, expected):
    staged = [_staged(n, e) for n, e in zip(["c.yml", ".env", "prometheus/prometheus.yml"], exists)]
    assert stack.backup_files(staged, replaced, old, "c.yml") == expected


FILES = [{"name": "c.yml", "mode": "0644", "secret": False}, {"name": ".env", "mode": "0600", "secret": True},
         {"name": "prometheus/prometheus.yml", "mode": "0644", "secret": False}]


def test_stage_entries_split_secrets_and_flatten_names():
    plain = stack.stage_entries(FILES, ["C", "E", "P"], "/s/.staging", "/s", False)
    assert plain == [
        {"name": "c.yml", "path": "/s/.staging/c.yml", "mode": "0644", "content": "C", "compare": "/s/c.yml"},
        {"name": "prometheus/prometheus.yml", "path": "/s/.staging/prometheus__prometheus.yml", "mode": "0644",
         "content": "P", "compare": "/s/prometheus/prometheus.yml"}]
    assert [e["content"] for e in stack.stage_entries(FILES, ["C", "E", "P"], "/s/.staging", "/s", True)] == ["E"]
    direct = stack.stage_entries([{"name": "a/b.yml"}], ["X"], "/s", None, False, flatten=False)
    assert direct == [{"name": "a/b.yml", "path": "/s/a/b.yml", "mode": "0644", "content": "X"}]
    with pytest.raises(ValueError, match="3 files but 2 rendered"):
        stack.stage_entries(FILES, ["C", "E"], "/s/.staging", "/s", False)


def test_install_entries_back_up_first_and_keep_env_secret():
    entries = stack.install_entries(FILES, ["c.yml", ".env"], "/s/.staging", "/s")
    assert [(e["path"], e["src"]) for e in entries] == [
        ("/s/c.yml.prev", "/s/c.yml"), ("/s/.env.prev", "/s/.env"),
        ("/s/c.yml", "/s/.staging/c.yml"), ("/s/.env", "/s/.staging/.env"),
        ("/s/prometheus/prometheus.yml", "/s/.staging/prometheus__prometheus.yml")]
    assert [e["mode"] for e in entries] == ["0644", "0600", "0644", "0600", "0644"]
    assert [e["path"] for e in entries if e["secret"]] == ["/s/.env.prev", "/s/.env"]


def test_install_entries_name_the_backed_up_compose_file_first():
    marked = stack.install_entries(FILES, ["c.yml", ".env"], "/s/.staging", "/s", "/s/.previous-compose", "c.yml")
    assert marked[0] == {"path": "/s/.previous-compose", "mode": "0644", "content": "c.yml\n"}
    assert marked[1:] == stack.install_entries(FILES, ["c.yml", ".env"], "/s/.staging", "/s")
    # a compose file that is not backed up (new, or unchanged): the marker keeps what it said
    assert stack.install_entries(FILES, [".env"], "/s/.staging", "/s", "/s/.previous-compose", "c.yml")[0]["path"] == "/s/.env.prev"


def test_env_changes_leave_secrets_out():
    old = "# managed\nVLLM_PORT=8000\nDTYPE=float16\nHF_TOKEN='old-secret'\nGONE=1\n"
    new = {"VLLM_PORT": 8001, "DTYPE": "float16", "HF_TOKEN": "new-secret", "ADDED": "x"}
    assert stack.env_changes(new, old, ["HF_TOKEN", "VLLM_API_KEY"]) == [
        "ADDED: (absent) -> x", "GONE: 1 -> (absent)", "VLLM_PORT: 8000 -> 8001"]


def test_mask_longest_first():
    assert stack.mask("key abc and abcdef", ["abc", "abcdef", ""]) == "key ******** and ********"


# --- vllm_verify ------------------------------------------------------------------------------

APPS = "\n".join([
    "101, VLLM::EngineCore, 7000, GPU-aaa",
    "102, VLLM::EngineCore, 3000, GPU-aaa",
    "103, python3, 9999, GPU-bbb",      # another GPU: not ours
    "104, Xorg, [N/A], GPU-aaa",        # no number: left out
])
GPU = {"index": 0, "uuid": "GPU-aaa", "memory_total_mib": 10000}


def test_gpu_processes_filters_gpu_and_sorts():
    assert verify.gpu_processes(APPS, "GPU-aaa") == [
        {"pid": 101, "process_name": "VLLM::EngineCore", "used_mib": 7000},
        {"pid": 102, "process_name": "VLLM::EngineCore", "used_mib": 3000}]


def test_pair_processes_largest_with_largest():
    # budgets: small 0.3 x 10000 + 500 = 3500; large 0.6 x 10000 + 500 + 1024 (1 GiB graphs) = 7524
    instances = [dict(TWO[0]), dict(TWO[1], plan={"cuda_graph_gib": 1})]
    rows = verify.pair_processes(APPS, GPU, instances, 500, 100)
    assert rows == [
        {"instance": "large", "budget_mib": 7524, "pid": 101, "process_name": "VLLM::EngineCore", "used_mib": 7000, "limit_mib": 7624},
        {"instance": "small", "budget_mib": 3500, "pid": 102, "process_name": "VLLM::EngineCore", "used_mib": 3000, "limit_mib": 3600},
    ]
    assert [c["ok"] for c in verify.process_checks(rows, 100)] == [True, True]


def test_process_check_trips_on_a_process_over_its_limit():
    # the large instance's process holds 8000 MiB, over its 7624 MiB limit: the check must fail
    apps = APPS.replace("101, VLLM::EngineCore, 7000", "101, VLLM::EngineCore, 8000")
    rows = verify.pair_processes(apps, GPU, [dict(TWO[0]), dict(TWO[1], plan={"cuda_graph_gib": 1})], 500, 100)
    checks = verify.process_checks(rows, 100)
    assert [(c["name"], c["ok"]) for c in checks] == [("gpu_process_large", False), ("gpu_process_small", True)]
    assert "8000 MiB" in checks[0]["detail"] and "7624 MiB" in checks[0]["detail"]


def test_process_check_fails_when_a_process_is_missing():
    # only the 7000 MiB process runs: it pairs with the large instance (limit 7624), small has none
    rows = verify.pair_processes(APPS.splitlines()[0], GPU, [dict(TWO[0]), dict(TWO[1], plan={"cuda_graph_gib": 1})], 500, 100)
    checks = verify.process_checks(rows, 100)
    assert [(c["name"], c["ok"]) for c in checks] == [("gpu_process_large", True), ("gpu_process_small", False)]
    assert checks[1]["detail"] == "no GPU process found for instance small"


@pytest.mark.parametrize("result,ok", [
    ({"rc": 0, "stdout": "GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-aaa)"}, True),
    ({"rc": 0, "stdout": ""}, False),
    ({"rc": 125, "stdout": "", "stderr": "could not select device driver"}, False),
])
def test_smoke_check(result, ok):
    assert verify.smoke_check(result, "nvidia/cuda:12.8.0-base-ubuntu24.04")["ok"] is ok


def _http(chat_status=200, content="OK", served=("a",), started=100.0, ended=100.25, limit=0):
    return verify.http_result(
        TWO[0], "http://127.0.0.1:8001", {"status": 200}, {"status": 200, "json": {"data": [{"id": s} for s in served]}},
        {"status": chat_status, "json": {"choices": [{"message": {"content": content}}], "usage": {"completion_tokens": 2}}},
        started, ended, limit)


def test_http_result_measures_the_round_trip():
    out = _http()
    assert out["instance"]["chat_latency_ms"] == 250
    assert [(c["name"], c["ok"]) for c in out["checks"]] == [("health_small", True), ("models_small", True), ("chat_small", True)]


@pytest.mark.parametrize("kwargs,failing", [
    ({"limit": 200}, "chat_small"),                   # 250 ms over a 200 ms limit
    ({"started": 100.0, "ended": 99.0}, "chat_small"),  # a clock running backwards is no measurement
    ({"chat_status": 500}, "chat_small"),
    ({"content": None}, "chat_small"),
    ({"served": ("other",)}, "models_small"),
])
def test_http_result_fails_the_right_check(kwargs, failing):
    checks = _http(**kwargs)["checks"]
    assert [c["name"] for c in checks if not c["ok"]] == [failing]


def test_http_results_of_one_module_run_in_instance_order():
    answer = {"health": {"status": 200}, "models": {"status": 200, "json": {"data": [{"id": i["served_model_name"]} for i in TWO]}},
              "chat": {"status": 200, "json": {"choices": [{"message": {"content": "OK"}}], "usage": {"completion_tokens": 1}}},
              "started": 10.0, "ended": 10.5}
    unhealthy = dict(answer, health={"status": -1, "msg": "Request failed: connection refused"})
    bases = verify.http_bases(TWO, "127.0.0.1")
    out = verify.http_results(TWO, [dict(answer, base=bases[0]["base"]), dict(unhealthy, base=bases[1]["base"])], 0)
    assert [i["url"] for i in out["instances"]] == [f"http://127.0.0.1:{i['port']}" for i in TWO]
    assert [i["chat_latency_ms"] for i in out["instances"]] == [500, 500]
    assert [c["name"] for c in out["checks"] if not c["ok"]] == [f"health_{TWO[1]['name']}"]
    assert len(out["checks"]) == 6
    assert verify.http_bases(TWO, "10.0.0.5") == [
        {"base": f"http://10.0.0.5:{i['port']}", "served_model_name": i["served_model_name"]} for i in TWO]


# --- host_memory ------------------------------------------------------------------------------

MEMINFO_16G = "MemTotal:       16384000 kB\nMemFree:         1000 kB\n"   # 16000 MiB


@pytest.mark.parametrize("limit,mib", [("12g", 12288), ("512m", 512), ("1.5g", 1536), ("1073741824", 1024), ("2GB", 2048)])
def test_limit_mib(limit, mib):
    assert memory.limit_mib(limit) == mib


@pytest.mark.parametrize("tier,reserved,expected", [
    ("12g", 2048, {"limit": "12g", "total_mib": 16000, "capped": False}),
    ("15g", 2048, {"limit": "13952m", "total_mib": 16000, "capped": True}),
    ("15g", 15900, {"limit": "256m", "total_mib": 16000, "capped": True}),   # the 256 MiB floor
])
def test_capped_limit(tier, reserved, expected):
    assert memory.capped_limit(tier, MEMINFO_16G, reserved) == expected


def test_limit_refuses_garbage():
    with pytest.raises(ValueError, match="not a Docker memory limit"):
        memory.limit_mib("twelve")


# --- inputs -----------------------------------------------------------------------------------

RULES = {
    "x_dir": {"type": "path", "required": True},
    "x_port": {"type": "int", "min": 1, "max": 65535},
    "x_pull": {"choices": ["always", "missing"]},
    "x_key": {"forbid": ["'", "\n"], "secret": True},
    "x_name": {"pattern": "[a-z]+", "meaning": "lowercase letters"},
}
GOOD = {"x_dir": "/opt/libra", "x_port": 8000, "x_pull": "missing", "x_key": "sk-1", "x_name": "libra"}


def test_inputs_accept_good_values():
    assert inputs.input_errors(GOOD, RULES) == []


@pytest.mark.parametrize("field,value,message", [
    ("x_dir", "opt/libra", "x_dir must be an absolute path (starting with /), got 'opt/libra'"),
    ("x_dir", "", "x_dir is required"),
    ("x_port", 0, "x_port must be in 1..65535, got 0"),
    ("x_port", "eighty", "x_port must be an integer, got 'eighty'"),
    ("x_pull", "sometimes", "x_pull must be one of always, missing, got 'sometimes'"),
    ("x_key", "sk-'quoted", "x_key may not contain a single quote (it is written literally to a file), got (hidden)"),
    ("x_name", "Libra", "x_name must match [a-z]+ (lowercase letters), got 'Libra'"),
])
def test_inputs_name_the_field_and_what_is_allowed(field, value, message):
    assert inputs.input_errors({**GOOD, field: value}, RULES) == [message]


def test_inputs_never_show_a_secret():
    errors = inputs.input_errors({**GOOD, "x_key": "sk-'topsecret"}, RULES)
    assert errors and "topsecret" not in " ".join(errors)


def test_inputs_a_field_not_passed_is_an_error():
    assert inputs.input_errors({k: v for k, v in GOOD.items() if k != "x_pull"}, RULES) == ["x_pull was not passed to the input check"]


# --- rollout ----------------------------------------------------------------------------------

def test_snapshot_marks_absent_files():
    found = [{"path": "/opt/libra/.env", "checksum": "e1"}, {"path": "/opt/libra/.rollout-stamp", "checksum": "s1"}]
    assert rollout.snapshot(found, ["docker-compose.vllm.yml", ".env"]) == {"docker-compose.vllm.yml": "absent", ".env": "e1"}
    assert rollout.found_checksum(found, ".rollout-stamp") == "s1"


@pytest.mark.parametrize("results,pct,tripped", [
    (["deployed"], 25, False),
    (["failed"], 25, True),                                  # 100% > 25%
    (["deployed", "deployed", "deployed", "failed"], 25, False),   # 25% is not more than 25%
    (["deployed", "deployed", "failed", "rolled_back"], 25, True),  # 50%
    (["deployed", "failed"], 50, False),
    ([None, "deployed"], 0, True),                           # a host without a record counts as failed
])
def test_batch_gate(results, pct, tripped):
    records = [None if r is None else {"result": r} for r in results]
    assert rollout.batch_gate(records, pct)["tripped"] is tripped


def test_tree_digest_changes_with_content(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.yml").write_text("one")
    first = rollout.tree_digest([str(tmp_path / "a")])
    assert first == rollout.tree_digest([str(tmp_path / "a")])
    (tmp_path / "a" / "f.yml").write_text("two")
    assert rollout.tree_digest([str(tmp_path / "a")]) != first
    (tmp_path / "a" / "f.yml").write_text("one")
    (tmp_path / "a" / "f.yml").rename(tmp_path / "a" / "g.yml")   # same content, other name
    assert rollout.tree_digest([str(tmp_path / "a")]) != first
    with pytest.raises(FileNotFoundError):
        rollout.tree_digest([str(tmp_path / "missing")])


def test_report_files_json_markdown_and_the_pictures_that_have_a_file():
    pictures = [{"host": "a", "file": "plan-a.svg", "svg": "<svg/>"}, {"host": "b", "file": None, "svg": ""}]
    assert rollout.report_files("/r", "rollout", "{}", "# md\n", pictures) == [
        {"path": "/r/rollout.json", "mode": "0644", "content": "{}\n"},
        {"path": "/r/rollout.md", "mode": "0644", "content": "# md\n"},
        {"path": "/r/plan-a.svg", "mode": "0644", "content": "<svg/>"}]


@pytest.mark.parametrize("stderr,expected", [
    # as given (Docker 20.10's CLI)
    (["Error: No such image: libra/worker:1.0"], ["libra/worker:1.0"]),
    # spelled back with the implicit tag and registry (the daemon's normalised reference)
    (["Error response from daemon: No such image: docker.io/libra/worker:latest"], ["libra/worker"]),
    (["Error: No such image: docker.io/library/redis:latest"], ["redis"]),
    # a registry host is not prefixed; another tag of the same repository is another image
    (["Error: No such image: registry.example.com/ai-worker:2.0"], []),
    (["Error: No such image: registry.example.com/ai-worker:1.0"], ["registry.example.com/ai-worker:1.0"]),
    # all present: nothing reported
    ([], []),
])
def test_missing_images(stderr, expected):
    images = ["vllm/vllm-openai:v0.33.0", "libra/worker:1.0", "libra/worker", "redis", "registry.example.com/ai-worker:1.0"]
    assert stack.missing_images(images, stderr) == expected
