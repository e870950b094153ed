"""Ansible filter: the GPU memory plan as an SVG picture (``lib/libra_picture``).

    {{ vllm_tier_resolved | vllm_plan_svg }}            the tier's own GPU
    {{ vllm_tier_resolved | vllm_plan_svg(gpu) }}       another GPU dict
"""

from __future__ import annotations

import os
import sys

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from libra_common import ansible_filter, lib_module, plain as _plain  # noqa: E402


def vllm_plan_svg(tier, gpu=None, title=None):
    """``resolved_tier | vllm_plan_svg(gpu=None, title=None)``: the SVG text of one resolved tier."""
    return lib_module("libra_picture").render_plan_svg(tier, gpu or None, title)


def vllm_plan_pictures(hostvars, hosts, fact="vllm_tier_resolved"):
    """``hostvars | vllm_plan_pictures(hosts)``: ``[{host, file, svg, error}]`` for the fleet report.

    One entry per host that has the resolved-tier fact: ``file`` is ``plan-<host>.svg`` and
    ``svg`` its text; a tier that cannot be drawn (a plan without the planner's keys) gets
    ``file`` none and ``error`` saying which key is missing, so the report says so instead of failing.
    """
    picture = lib_module("libra_picture")
    pictures = []
    for host in hosts or []:
        try:
            tier = hostvars[host].get(fact) if hasattr(hostvars[host], "get") else None
        except KeyError:
            tier = None
        if not tier:
            continue
        try:
            pictures.append({"host": host, "file": f"plan-{host}.svg", "svg": picture.render_plan_svg(_plain(tier)), "error": None})
        except picture.PictureError as err:
            pictures.append({"host": host, "file": None, "svg": None, "error": str(err)})
    return pictures


class FilterModule:
    def filters(self):
        # libra_picture is imported when a filter first runs (see lib/libra_common.py)
        return {"vllm_plan_svg": ansible_filter(vllm_plan_svg, "libra_picture:PictureError"),
                "vllm_plan_pictures": vllm_plan_pictures}
