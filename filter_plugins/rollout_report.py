"""Fleet rollout report: one record per host, rendered as JSON and as a Markdown table.

Pure functions over plain dicts, wrapped as Jinja filters at the bottom. playbooks/rollout.yml
builds each host's record with ``rollout_report_record`` while the host runs, and
``rollout_report_collect`` turns ``hostvars`` into the fleet report: a host that never got a
record (it was never reached because the batch gate stopped the rollout) is ``skipped``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

RESULTS = ("deployed", "rolled_back", "failed", "failed_preflight", "skipped")
# What each result means, printed under the Markdown table.
RESULT_MEANINGS = {
    "deployed": "the new stack runs and passed its health gate",
    "rolled_back": "the new stack failed its health gate; the previous stack was restored and is healthy",
    "failed": "the new stack failed and no healthy previous stack could be restored",
    "failed_preflight": "stopped in the stage phase (preflight, plan, pulls); the host was not changed",
    "skipped": "never cut over: the batch gate stopped the rollout before this host's batch",
}


class RolloutReportError(ValueError):
    """Bad input to a rollout_report filter; the message names the filter and the field."""


def _num(value: Any) -> float | None:
    """A finite number or None (missing, empty, non-numeric)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _gpu_summary(gpu: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(gpu, Mapping) or not gpu:
        return None
    return {
        "index": gpu.get("index"),
        "name": gpu.get("name"),
        "uuid": gpu.get("uuid"),
        "memory_total_mib": _num(gpu.get("memory_total_mib")),
        "compute_capability": gpu.get("compute_capability"),
        "driver_version": gpu.get("driver_version"),
    }


def _tier_summary(tier: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Tier name, compose file and the planned GPU memory (sum of the instances' budgets)."""
    if not isinstance(tier, Mapping) or not tier:
        return None
    instances = [i for i in tier.get("instances") or [] if isinstance(i, Mapping)]
    budgets = [_num((i.get("plan") or {}).get("budget_gib")) for i in instances]
    needs = [_num((i.get("plan") or {}).get("needs_gib")) for i in instances]
    return {
        "name": tier.get("name"),
        "requested": tier.get("requested"),
        "compose_file": tier.get("compose_file"),
        "vllm_mode": tier.get("vllm_mode"),
        "fits": tier.get("fits"),
        "instances": [
            {
                "name": i.get("name"),
                "model": i.get("model"),
                "port": i.get("port"),
                "gpu_memory_utilization": _num(i.get("gpu_memory_utilization")),
                "max_model_len": i.get("max_model_len"),
            }
            for i in instances
        ],
        "planned_gpu_memory_gib": _round(sum(b for b in budgets if b is not None)) if any(b is not None for b in budgets) else None,
        "planned_needs_gib": _round(sum(n for n in needs if n is not None)) if any(n is not None for n in needs) else None,
    }


def _dicts(value: Any, field: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise RolloutReportError(f"rollout_report_record: verify.{field} must be a list of dicts (vllm_verify_results.{field})")
    return value


# The keys of roles/vllm_verify's fact vllm_verify_results (tasks/main.yml) the report reads.
VERIFY_KEYS = ("passed", "instances", "processes", "gpu")


def _verify_summary(verify: Any) -> dict[str, Any]:
    """Health, measured GPU memory and completion latency from vllm_verify's results.

    One shape, the role's fact ``vllm_verify_results``: ``passed`` (bool), ``instances`` (per
    vLLM instance: ``health_status``, ``chat_latency_ms``), ``processes`` (per instance:
    ``used_mib`` of its GPU process) and ``gpu`` (the GPU read after the start). Anything else
    is an error naming the missing key, so a stand-in that drifts from the role is caught.
    Measured GPU memory is the sum of the vLLM processes, else the GPU's used memory; the
    latency is the slowest instance's completion round trip.
    """
    out: dict[str, Any] = {"health": "unknown", "measured_gpu_memory_mib": None, "completion_latency_ms": None}
    if verify is None:
        return out
    if not isinstance(verify, Mapping):
        raise RolloutReportError("rollout_report_record: verify must be vllm_verify_results (a dict) or none")
    missing = [k for k in VERIFY_KEYS if k not in verify]
    if missing:
        raise RolloutReportError(f"rollout_report_record: verify lacks {', '.join(missing)} (the keys of vllm_verify_results: "
                                 f"{', '.join(VERIFY_KEYS)})")
    instances = _dicts(verify["instances"], "instances")
    processes = _dicts(verify["processes"], "processes")

    latencies = [_num(i.get("chat_latency_ms")) for i in instances]
    latencies = [x for x in latencies if x is not None]
    if latencies:
        out["completion_latency_ms"] = _round(max(latencies), 1)

    used = [_num(p.get("used_mib")) for p in processes]
    used = [x for x in used if x is not None]
    memory = sum(used) if used else None
    if memory is None and isinstance(verify["gpu"], Mapping):
        memory = _num(verify["gpu"].get("memory_used_mib"))
    out["measured_gpu_memory_mib"] = _round(memory, 0)

    passed = verify["passed"]
    if isinstance(passed, str) and passed.lower() in ("true", "false"):
        passed = passed.lower() == "true"
    if not isinstance(passed, bool):
        raise RolloutReportError(f"rollout_report_record: verify.passed must be true or false, got {passed!r}")
    out["health"] = "ok" if passed else "failed"
    return out


def rollout_report_record(
    result: str,
    gpu: Mapping[str, Any] | None = None,
    tier: Mapping[str, Any] | None = None,
    verify: Any = None,
    reason: Any = "",
    changed: bool | None = None,
) -> dict[str, Any]:
    """One host's record. ``result`` must be one of RESULTS."""
    if result not in RESULTS:
        raise RolloutReportError(
            f"rollout_report_record: result {result!r} is not one of {', '.join(RESULTS)}"
        )
    record: dict[str, Any] = {
        "result": result,
        "gpu": _gpu_summary(gpu),
        "tier": _tier_summary(tier),
    }
    record.update(_verify_summary(verify))
    if isinstance(reason, (list, tuple)):
        reason = "; ".join(str(r) for r in reason if r)
    record["reason"] = str(reason or "")
    if changed is not None:
        record["changed"] = bool(changed)
    return record


def _hostvar(hostvars: Any, host: str, name: str) -> Any:
    try:
        return hostvars[host].get(name)
    except (KeyError, AttributeError, TypeError):
        return None


def rollout_report_collect(
    hostvars: Any,
    hosts: Iterable[str],
    record_var: str = "__rollout_record",
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fleet report: ``{rollout: {...counts}, hosts: [record + host name, ...]}``.

    Every host in ``hosts`` appears once, in the given order; a host without a record is
    ``skipped``.
    """
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, Iterable):
        raise RolloutReportError("rollout_report_collect: hosts must be a list of host names")
    records = []
    seen = set()
    for host in hosts:
        host = str(host)
        if host in seen:
            continue
        seen.add(host)
        record = _hostvar(hostvars, host, record_var)
        if not isinstance(record, Mapping) or record.get("result") not in RESULTS:
            record = rollout_report_record("skipped", reason="not reached")
        records.append({"host": host, **dict(record)})
    counts = {result: sum(1 for r in records if r["result"] == result) for result in RESULTS}
    return {"rollout": {**dict(meta or {}), "hosts": len(records), "counts": counts}, "hosts": records}


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def rollout_report_markdown(report: Mapping[str, Any], pictures: Any = None) -> str:
    """The Markdown summary: counts, then one table row per host, then each host's plan picture
    (``pictures``: the ``vllm_plan_pictures`` list, files written next to the report)."""
    if not isinstance(report, Mapping) or not isinstance(report.get("hosts"), list):
        raise RolloutReportError("rollout_report_markdown: report must be the dict rollout_report_collect returns")
    meta = report.get("rollout") or {}
    counts = meta.get("counts") or {}
    lines = ["# vLLM fleet rollout", ""]
    for key in ("started", "updated", "phase", "check_mode", "serial", "max_fail_percentage"):
        if key in meta:
            lines.append(f"- {key.replace('_', ' ')}: {_cell(meta[key])}")
    lines.append("- hosts: " + str(meta.get("hosts", len(report["hosts"]))) + " ("
                 + ", ".join(f"{k} {counts.get(k, 0)}" for k in RESULTS) + ")")
    lines += [
        "",
        "| host | GPU | tier | planned GPU memory (GiB) | measured GPU memory (MiB) | health | completion latency (ms) | result | reason |",
        "|---|---|---|---:|---:|---|---:|---|---|",
    ]
    for rec in report["hosts"]:
        gpu = rec.get("gpu") or {}
        tier = rec.get("tier") or {}
        gpu_text = None
        if gpu:
            gpu_text = f"{gpu.get('name') or 'GPU'} #{gpu.get('index')}"
            if gpu.get("memory_total_mib") is not None:
                gpu_text += f" ({int(gpu['memory_total_mib'])} MiB)"
        measured = rec.get("measured_gpu_memory_mib")
        lines.append("| " + " | ".join(_cell(c) for c in (
            rec.get("host"),
            gpu_text,
            tier.get("name"),
            tier.get("planned_gpu_memory_gib"),
            None if measured is None else int(measured),
            rec.get("health"),
            rec.get("completion_latency_ms"),
            f"**{rec.get('result')}**" if rec.get("result") != "deployed" else rec.get("result"),
            rec.get("reason"),
        )) + " |")
    lines += ["", "Results:", ""]
    lines += [f"- `{k}`: {RESULT_MEANINGS[k]}" for k in RESULTS]
    shown = [p for p in pictures or [] if isinstance(p, Mapping) and p.get("host")]
    if shown:
        lines += ["", "## GPU memory plan per host", ""]
        for pic in shown:
            lines.append(f"### {_cell(pic['host'])}")
            lines.append("")
            if pic.get("file"):
                lines.append(f"![GPU memory plan of {_cell(pic['host'])}]({pic['file']})")
            else:
                lines.append(f"(no picture: {_cell(pic.get('error'))})")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def rollout_fingerprint(inputs: Any) -> str:
    """sha256 of the JSON form of ``inputs`` (keys sorted): the host's desired state in one value.
    Secrets among the inputs never leave the controller in clear: only the digest is written."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def rollout_stamp_content(fingerprint: str, files: Mapping[str, Any]) -> str:
    """The text of a host's rollout stamp: its fingerprint and the checksums of its stack files.
    Written after a successful cut-over; the next rollout compares the checksum of the stamp on
    the host with the checksum of this text for the current inputs and files."""
    if not isinstance(fingerprint, str) or not fingerprint:
        raise RolloutReportError("rollout_stamp_content: fingerprint must be a non-empty string")
    if not isinstance(files, Mapping):
        raise RolloutReportError("rollout_stamp_content: files must map file names to checksums")
    return json.dumps({"fingerprint": fingerprint, "files": dict(files)}, indent=2, sort_keys=True) + "\n"


class FilterModule:
    """Jinja filters for playbooks/rollout.yml."""

    def filters(self):
        return {
            "rollout_report_record": rollout_report_record,
            "rollout_report_collect": rollout_report_collect,
            "rollout_report_markdown": rollout_report_markdown,
            "rollout_fingerprint": rollout_fingerprint,
            "rollout_stamp_content": rollout_stamp_content,
        }
