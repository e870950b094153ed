"""Checks of roles/vllm_verify, as data: each check is ``{'name', 'ok', 'fatal', 'detail'}``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def check(name: str, ok: bool, detail: str, fatal: bool = True) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "fatal": bool(fatal), "detail": detail}


def gpu_processes(apps_csv: str, gpu_uuid: str | None = None) -> list[dict[str, Any]]:
    """Processes of ``nvidia-smi --query-compute-apps=pid,process_name,used_memory,gpu_uuid
    --format=csv,noheader,nounits`` on the GPU ``gpu_uuid`` (all GPUs when it is empty), largest
    first. Rows whose used memory is not a number ("[N/A]" on some drivers) are left out."""
    out = []
    for line in (apps_csv or "").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4 or not fields[2].isdigit():
            continue
        if gpu_uuid and fields[3] != gpu_uuid:
            continue
        out.append({"pid": int(fields[0]) if fields[0].isdigit() else fields[0], "process_name": fields[1],
                    "used_mib": int(fields[2])})
    return sorted(out, key=lambda p: p["used_mib"], reverse=True)


def process_budgets(instances: Sequence[Mapping[str, Any]], total_mib: int, cuda_context_mib: int) -> list[dict[str, Any]]:
    """The GPU memory each vLLM process may hold: utilization x total (vLLM's share), plus the
    CUDA context and the CUDA graphs the plan counts outside that share. Largest first."""
    out = []
    for inst in instances:
        graphs_mib = float((inst.get("plan") or {}).get("cuda_graph_gib") or 0) * 1024
        budget = float(inst["gpu_memory_utilization"]) * int(total_mib) + int(cuda_context_mib) + graphs_mib
        out.append({"instance": inst["name"], "budget_mib": int(budget)})
    return sorted(out, key=lambda b: b["budget_mib"], reverse=True)


def pair_processes(apps_csv: str, gpu: Mapping[str, Any], instances: Sequence[Mapping[str, Any]], cuda_context_mib: int,
                   margin_mib: int) -> list[dict[str, Any]]:
    """One row per planned instance: its budget and limit (budget + margin), and the process
    paired with it. nvidia-smi does not say which container a process belongs to, so the N
    largest processes on the GPU (N = planned instances) are paired with the budgets, largest with
    largest; an instance without a process gets ``None`` for pid, name and use."""
    procs = gpu_processes(apps_csv, gpu.get("uuid"))
    rows = []
    for position, budget in enumerate(process_budgets(instances, int(gpu["memory_total_mib"]), cuda_context_mib)):
        proc = procs[position] if position < len(procs) else {}
        rows.append({**budget, "pid": proc.get("pid"), "process_name": proc.get("process_name"),
                     "used_mib": proc.get("used_mib"), "limit_mib": budget["budget_mib"] + int(margin_mib)})
    return rows


def process_checks(rows: Sequence[Mapping[str, Any]], margin_mib: int) -> list[dict[str, Any]]:
    """``gpu_process_<instance>``: the process paired with each instance stays within its limit."""
    out = []
    for row in rows:
        if row["used_mib"] is None:
            out.append(check("gpu_process_" + row["instance"], False, f"no GPU process found for instance {row['instance']}"))
            continue
        out.append(check(
            "gpu_process_" + row["instance"], row["used_mib"] <= row["limit_mib"],
            f"pid {row['pid']} uses {row['used_mib']} MiB; budget {row['budget_mib']} MiB + margin {int(margin_mib)}"
            f" = {row['limit_mib']} MiB"))
    return out


def smoke_check(result: Mapping[str, Any], image: str) -> dict[str, Any]:
    """``toolkit_smoke_test``: ``docker run --gpus all <image> nvidia-smi -L`` listed a GPU."""
    rc = result.get("rc")
    stdout = result.get("stdout") or ""
    first = (stdout.splitlines() or [""])[0]
    detail = first or (result.get("stderr") or result.get("msg") or "")[:300]
    return check("toolkit_smoke_test", rc == 0 and "GPU " in stdout,
                 f"docker run --gpus all {image} nvidia-smi -L: rc {rc}, {detail}")


def http_bases(instances: Sequence[Mapping[str, Any]], host: str) -> list[dict[str, Any]]:
    """What vllm_verify_http needs of each instance: its base URL on ``host`` and served name."""
    return [{"base": f"http://{host}:{inst['port']}", "served_model_name": inst["served_model_name"]} for inst in instances]


def http_results(instances: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]],
                 max_latency_ms: int = 0) -> dict[str, list]:
    """``http_result`` of every instance from one vllm_verify_http run (each result carries the
    base URL it was given): ``instances`` (the measured numbers per instance) and ``checks``
    (three per instance), in order."""
    out: dict[str, list] = {"instances": [], "checks": []}
    for inst, res in zip(instances, results):
        one = http_result(inst, res["base"], res["health"], res["models"], res["chat"], res["started"], res["ended"],
                          max_latency_ms)
        out["instances"].append(one["instance"])
        out["checks"] += one["checks"]
    return out


def http_result(instance: Mapping[str, Any], base: str, health: Mapping[str, Any], models: Mapping[str, Any],
                chat: Mapping[str, Any], started: float, ended: float, max_latency_ms: int = 0) -> dict[str, Any]:
    """The measured numbers of one instance (``instance``) and its three checks (``checks``:
    health, models, chat) from the uri results of GET /health, GET /v1/models and POST
    /v1/chat/completions. ``started``/``ended`` are the clock readings around the chat call
    (seconds); the chat check fails when the call took longer than ``max_latency_ms`` (0: no
    limit) or the clock ran backwards."""
    name = instance["name"]
    served_name = instance["served_model_name"]
    served = [m.get("id") for m in ((models.get("json") or {}).get("data") or []) if isinstance(m, Mapping)]
    body = chat.get("json") or {}
    reply = ((body.get("choices") or [{}])[0] or {}).get("message") or {}
    usage = body.get("usage") or {}
    latency_ms = round((float(ended) - float(started)) * 1000)
    health_status = health.get("status", -1)
    chat_status = chat.get("status", -1)
    chat_ok = chat_status == 200 and reply.get("content") is not None
    within = latency_ms >= 0 and (int(max_latency_ms) == 0 or latency_ms <= int(max_latency_ms))
    limit = f" (limit {int(max_latency_ms)} ms)" if int(max_latency_ms) > 0 else ""
    content = reply.get("content") or ""
    return {
        "instance": {
            "instance": name, "url": base, "health_status": health_status, "served_models": served,
            "chat_status": chat_status, "chat_latency_ms": latency_ms, "completion_tokens": usage.get("completion_tokens"),
            "reply": content if len(content) <= 80 else content[:77] + "...",
        },
        "checks": [
            check("health_" + name, health_status == 200, f"GET {base}/health: {health_status}"),
            check("models_" + name, served_name in served,
                  f"GET /v1/models: {models.get('status', -1)}, lists {', '.join(map(str, served)) or 'nothing'}; expected {served_name}"),
            check("chat_" + name, chat_ok and within,
                  f"POST /v1/chat/completions: {chat_status} in {latency_ms} ms{limit}, "
                  f"{usage.get('completion_tokens', '?')} completion tokens"),
        ],
    }
