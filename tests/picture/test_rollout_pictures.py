"""The fleet report embeds each host's plan picture (vllm_plan_pictures + rollout_report_markdown)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from plan_picture import vllm_plan_pictures
from rollout_report import rollout_report_collect, rollout_report_markdown


def test_pictures_for_hosts_with_a_plan_and_the_markdown_embeds_them(resolved_cases):
    hostvars = {
        "gpu-a": {"vllm_tier_resolved": resolved_cases["rtx2070-dual"]},
        "gpu-b": {"vllm_tier_resolved": resolved_cases["a100-80gb-single"]},
        "stub": {"vllm_tier_resolved": {"name": "single", "gpu": {"memory_total_mib": 8192}, "fits": True, "free_after_gib": 1.0,
                                        "instances": [{"name": "vllm", "plan": {"budget_gib": 6.8}}]}},
        "never-reached": {},
    }
    pictures = vllm_plan_pictures(hostvars, ["gpu-a", "gpu-b", "stub", "never-reached"])
    assert [p["host"] for p in pictures] == ["gpu-a", "gpu-b", "stub"]
    assert [p["file"] for p in pictures] == ["plan-gpu-a.svg", "plan-gpu-b.svg", None]
    assert "RTX 2070" in ET.fromstring(pictures[0]["svg"]).find("{http://www.w3.org/2000/svg}title").text
    assert "cuda_context_gib is missing" in pictures[2]["error"]

    report = rollout_report_collect(hostvars, ["gpu-a", "gpu-b", "stub", "never-reached"])
    md = rollout_report_markdown(report, pictures=pictures)
    section = md.split("## GPU memory plan per host", 1)[1]
    assert "### gpu-a\n\n![GPU memory plan of gpu-a](plan-gpu-a.svg)" in section
    assert "### gpu-b\n\n![GPU memory plan of gpu-b](plan-gpu-b.svg)" in section
    assert "### stub\n\n(no picture: vllm_plan_svg: instances[0].plan.cuda_context_gib is missing)" in section
    assert "never-reached" not in section
    # without pictures the report is what it was
    assert "## GPU memory plan per host" not in rollout_report_markdown(report)
