"""Host memory arithmetic for roles/host_memory."""
from __future__ import annotations

import re

# Docker's memory units (docs.docker.com/engine/containers/resource_constraints/: b, k, m, g),
# t added for completeness; a bare number is bytes.
_UNITS_MIB = {"b": 1 / 1048576, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1048576}
_LIMIT = re.compile(r"(\d+(?:\.\d+)?)([bkmgt]?)b?")


def limit_mib(limit: str) -> int:
    """A Docker memory limit (``12g``, ``512m``, ``1.5g``, ``1073741824``) in MiB, rounded down."""
    match = _LIMIT.fullmatch(str(limit).strip().lower())
    if not match:
        raise ValueError(f"not a Docker memory limit: {limit!r} (a number with an optional unit b, k, m, g)")
    return int(float(match.group(1)) * _UNITS_MIB[match.group(2) or "b"])


def meminfo_total_mib(meminfo: str) -> int:
    """MemTotal of /proc/meminfo (proc(5): in kB, i.e. KiB) in MiB."""
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    if not match:
        raise ValueError("/proc/meminfo has no MemTotal line")
    return int(match.group(1)) // 1024


def capped_limit(tier_limit: str, meminfo: str, reserved_mib: int, floor_mib: int = 256) -> dict:
    """The tier's container limit, or the host's RAM minus ``reserved_mib`` when that is smaller.

    Returns ``{'limit': str, 'total_mib': int, 'capped': bool}``; the cap never goes below
    ``floor_mib`` so that a small host still gets a usable limit.
    """
    total = meminfo_total_mib(meminfo)
    cap = max(total - int(reserved_mib), floor_mib)
    if limit_mib(tier_limit) <= cap:
        return {"limit": str(tier_limit), "total_mib": total, "capped": False}
    return {"limit": f"{cap}m", "total_mib": total, "capped": True}
