"""Parse ``nvidia-smi`` CSV queries into GPU dicts.

GPU query (the one roles/gpu_facts runs)::

    nvidia-smi --query-gpu=index,name,uuid,memory.total,memory.used,memory.free,compute_cap,driver_version \
               --format=csv,noheader,nounits

gives one line per GPU, fields separated by ``", "``. With ``nounits`` memory is in MiB.
A field the driver cannot report reads ``[N/A]`` or ``[Not Supported]`` (older drivers: ``N/A``).
``compute_cap`` exists from driver 510 on; older drivers answer
``Field "compute_cap" is not a valid field to query.`` (github.com/huggingface/candle/issues/733).
Without a working driver nvidia-smi prints "NVIDIA-SMI has failed because it couldn't communicate
with the NVIDIA driver ..." and exits 9; on a host without GPUs it prints "No devices were found".
"""

from __future__ import annotations

import re

from .errors import PlannerError

GPU_QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "memory.free",
    "compute_cap",
    "driver_version",
)
GPU_QUERY_ARGS = (f"--query-gpu={','.join(GPU_QUERY_FIELDS)}", "--format=csv,noheader,nounits")
APPS_QUERY_FIELDS = ("pid", "process_name", "used_memory", "gpu_uuid")
APPS_QUERY_ARGS = (f"--query-compute-apps={','.join(APPS_QUERY_FIELDS)}", "--format=csv,noheader,nounits")

_MISSING = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]", "[insufficient permissions]", "[gpu is lost]"}

# Known failure texts -> what the operator should hear.
_FAILURES = (
    (
        re.compile(r"couldn't communicate with the NVIDIA driver", re.I),
        "nvidia-smi cannot talk to the NVIDIA driver (driver not installed or not loaded)",
    ),
    (re.compile(r"No devices were found", re.I), "nvidia-smi found no NVIDIA GPU on this host"),
    (
        re.compile(r'Field "compute_cap" is not a valid field', re.I),
        "this NVIDIA driver is too old to report compute_cap (driver 510 or newer is needed)",
    ),
    (re.compile(r"is not a valid field to query", re.I), "this nvidia-smi does not know a queried field"),
    (re.compile(r"command not found|No such file or directory", re.I), "nvidia-smi is not installed on this host"),
    (re.compile(r"Unable to determine the device handle|GPU is lost", re.I), "a GPU fell off the bus or is unreachable"),
)


def _failure(text: str) -> str | None:
    for pattern, meaning in _FAILURES:
        if pattern.search(text):
            return meaning
    return None


def _lines(output) -> list[str]:
    if isinstance(output, (list, tuple)):
        lines = [str(x) for x in output]
    elif output is None:
        lines = []
    else:
        lines = str(output).splitlines()
    return [line.strip() for line in lines if line.strip()]


def _split(line: str, count: int, filter_name: str, what: str) -> list[str]:
    # GPU names never contain commas, so a plain split is exact; ``maxsplit`` keeps any
    # surplus in the last field rather than shifting every column.
    parts = [p.strip() for p in line.split(",", count - 1)]
    if len(parts) != count:
        raise PlannerError(
            filter_name,
            what,
            f"expected {count} comma-separated fields ({', '.join(GPU_QUERY_FIELDS if count == 8 else APPS_QUERY_FIELDS)}), "
            f"got {len(parts)} in {line!r}",
        )
    return parts


def _optional(value: str) -> str | None:
    return None if value.strip().lower() in _MISSING else value.strip()


def _mib(value: str, filter_name: str, field: str, required: bool) -> int | None:
    text = _optional(value)
    if text is None:
        if required:
            # Unified-memory parts (NVIDIA GB10 / DGX Spark) report every memory.* field as [N/A]
            # (docs.nvidia.com/dgx/dgx-spark/known-issues.html, quoted in unslothai/unsloth#10703).
            raise PlannerError(
                filter_name,
                field,
                f"nvidia-smi did not report it ({value!r}); a unified-memory GPU reports no memory size: "
                "give gpu_facts_memory_total_mib and gpu_facts_compute_capability instead",
            )
        return None
    text = re.sub(r"\s*MiB$", "", text, flags=re.I)
    try:
        return int(float(text))
    except ValueError:
        raise PlannerError(filter_name, field, f"not a number of MiB: {value!r}") from None


def parse_gpus(output, filter_name: str = "vllm_parse_nvidia_smi") -> list[dict]:
    """GPU dicts from the ``--query-gpu`` CSV (a string, or a list of lines such as ``stdout_lines``)."""
    lines = _lines(output)
    joined = "\n".join(lines)
    failure = _failure(joined)
    if failure:
        raise PlannerError(filter_name, "nvidia_smi", f"{failure}: {joined[:300]}")
    if not lines:
        raise PlannerError(filter_name, "nvidia_smi", "empty output: nvidia-smi reported no GPU")
    gpus = []
    for number, line in enumerate(lines):
        if line.lower().startswith("index,") or line.lower().startswith("index ["):
            continue  # a header line, if --format had no noheader
        where = f"nvidia_smi[{number}]"
        index, name, uuid, total, used, free, cap, driver = _split(line, len(GPU_QUERY_FIELDS), filter_name, where)
        try:
            index_num = int(index)
        except ValueError:
            raise PlannerError(filter_name, f"{where}.index", f"not an integer: {index!r}") from None
        cap_text = _optional(cap)
        if cap_text is None or not re.fullmatch(r"\d+\.\d+", cap_text):
            raise PlannerError(
                filter_name,
                f"{where}.compute_cap",
                f"expected a compute capability such as 7.5, got {cap!r} (driver 510 or newer reports it)",
            )
        gpus.append(
            {
                "index": index_num,
                "name": _optional(name),
                "uuid": _optional(uuid),
                "memory_total_mib": _mib(total, filter_name, f"{where}.memory.total", required=True),
                "memory_used_mib": _mib(used, filter_name, f"{where}.memory.used", required=False),
                "memory_free_mib": _mib(free, filter_name, f"{where}.memory.free", required=False),
                "compute_capability": cap_text,
                "driver_version": _optional(driver),
            }
        )
    if not gpus:
        raise PlannerError(filter_name, "nvidia_smi", "no GPU lines in the output")
    return gpus


def parse_compute_apps(output, filter_name: str = "vllm_parse_compute_apps") -> list[dict]:
    """Processes from ``--query-compute-apps=pid,process_name,used_memory,gpu_uuid``.

    No process prints nothing, which is an empty list (not an error).
    """
    lines = _lines(output)
    failure = _failure("\n".join(lines))
    if failure:
        raise PlannerError(filter_name, "nvidia_smi", f"{failure}: {' '.join(lines)[:300]}")
    apps = []
    for number, line in enumerate(lines):
        if line.lower().startswith("pid,") or "no running processes" in line.lower():
            continue
        where = f"nvidia_smi[{number}]"
        # process names may contain commas (rare): take pid from the left, memory/uuid from the right
        head, _, rest = line.partition(",")
        name_part, mem, uuid = (p.strip() for p in rest.rsplit(",", 2)) if rest.count(",") >= 2 else ("", "", "")
        if not uuid:
            raise PlannerError(filter_name, where, f"expected 4 fields ({', '.join(APPS_QUERY_FIELDS)}), got {line!r}")
        try:
            pid = int(head.strip())
        except ValueError:
            raise PlannerError(filter_name, f"{where}.pid", f"not an integer: {head!r}") from None
        apps.append(
            {
                "pid": pid,
                "process_name": _optional(name_part),
                "used_memory_mib": _mib(mem, filter_name, f"{where}.used_memory", required=False),
                "gpu_uuid": _optional(uuid),
            }
        )
    return apps


def select_gpu(gpus: list[dict], index, filter_name: str = "gpu_facts") -> dict:
    """The GPU whose nvidia-smi index is ``index``; the error names the valid ones."""
    valid = [g["index"] for g in gpus]
    try:
        wanted = int(index)
    except (TypeError, ValueError):
        raise PlannerError(filter_name, "gpu_facts_index", f"not an integer: {index!r}; valid: {valid}") from None
    for gpu in gpus:
        if gpu["index"] == wanted:
            return gpu
    raise PlannerError(filter_name, "gpu_facts_index", f"no GPU with index {wanted}; this host has {valid}")


# vLLM's engine process names itself VLLM::EngineCore (V1 engine, via setproctitle); older images
# show the interpreter. Override with preflight_own_process_regex where other Python GPU work runs.
OWN_PROCESS_REGEX = r"(?i)vllm|(^|/)python3?(\.\d+)?$"


def gpu_for_plan(gpu: dict, apps=None, own_process_regex: str = OWN_PROCESS_REGEX, filter_name: str = "vllm_gpu_for_plan") -> dict:
    """The GPU as a (re)deployment sees it: memory held by vLLM processes counts as free.

    A running stack is replaced (or left alone) by the deployment, so its memory must not make
    the plan fail on the second run; memory held by anything else stays used.
    """
    out = dict(gpu)
    used = gpu.get("memory_used_mib")
    if used is None:
        return out
    try:
        pattern = re.compile(own_process_regex)
    except re.error as err:
        raise PlannerError(filter_name, "own_process_regex", f"not a regular expression: {err}") from None
    own = 0
    for app in apps or []:
        if app.get("gpu_uuid") not in (None, gpu.get("uuid")):
            continue
        if pattern.search(app.get("process_name") or "") and app.get("used_memory_mib"):
            own += int(app["used_memory_mib"])
    foreign = max(int(used) - own, 0)
    out["memory_used_mib"] = foreign
    out["memory_free_mib"] = max(int(gpu["memory_total_mib"]) - foreign, 0)
    out["memory_held_by_vllm_mib"] = own
    return out
