"""The plan picture as a person sees it: rendered to PNG by a real browser (Debian's headless
chromium) and read back pixel by pixel.

Where to look comes from the SVG's own rectangles (xml.etree); what must be there is the colour
the legend promises: red where the plan runs over the card, green in the KV cache, the dark
card-total line, and a picture that is not blank.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from libra_picture import render_plan_svg
from pngread import pixel, read_png

NS = "{http://www.w3.org/2000/svg}"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def render_png(svg_path: str, png_path: str, width: int, height: int, profile: str) -> None:
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_path}", f"--window-size={width},{height}", f"file://{svg_path}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and os.path.exists(png_path), result.stderr[-2000:]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, resolved_cases):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (tests/deps/apt-packages.txt lists it; run make test-deps)")
    tmp = tmp_path_factory.mktemp("png")
    out = {}
    for case in ("rtx2070-dual", "a100-80gb-single", "rtx2070-kv-short"):
        svg = render_plan_svg(resolved_cases[case])
        root = ET.fromstring(svg)
        svg_path = tmp / f"{case}.svg"
        svg_path.write_text(svg)
        png_path = tmp / f"{case}.png"
        render_png(str(svg_path), str(png_path), int(root.get("width")), int(root.get("height")), str(tmp / "profile"))
        out[case] = (root, read_png(str(png_path)), str(png_path))
    return out


def centre(el: ET.Element) -> tuple[int, int]:
    return int(float(el.get("x")) + float(el.get("width")) / 2), int(float(el.get("y")) + float(el.get("height")) / 2)


def near(rgb, hex_colour: str, tol: int = 24) -> bool:
    want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return all(abs(a - b) <= tol for a, b in zip(rgb, want))


def rects(root, cls):
    return [el for el in root.iter(f"{NS}rect") if cls in (el.get("class") or "").split()]


@pytest.mark.parametrize("case", ["rtx2070-dual", "a100-80gb-single", "rtx2070-kv-short"])
def test_picture_is_not_blank_and_has_the_svg_size(rendered, case):
    root, image, _ = rendered[case]
    width, height, rows, _bpp = image
    assert (width, height) == (int(root.get("width")), int(root.get("height")))
    colours = {pixel(image, x, y) for y in range(0, height, 3) for x in range(0, width, 3)}
    assert len(colours) > 20
    ink = sum(1 for y in range(0, height, 2) for x in range(0, width, 2) if sum(pixel(image, x, y)) < 600)
    assert ink / ((width // 2) * (height // 2)) > 0.02


@pytest.mark.parametrize("case", ["rtx2070-dual", "a100-80gb-single", "rtx2070-kv-short"])
def test_kv_cache_is_green_and_overflow_red_where_the_svg_puts_them(rendered, case):
    root, image, _ = rendered[case]
    kv = [el for el in rects(root, "seg-kv") if float(el.get("height")) >= 3]
    assert kv, "no KV cache segment tall enough to sample"
    for el in kv:
        if any(float(o.get("y")) <= float(el.get("y")) <= float(o.get("y")) + float(o.get("height")) for o in rects(root, "overflow")):
            continue  # painted over by the red overflow
        # beside the label the segment may carry
        spot = (int(float(el.get("x"))) + 4, centre(el)[1])
        assert near(pixel(image, *spot), "#2f9e44"), (case, pixel(image, *spot))
    overflow = rects(root, "overflow")
    for el in overflow:
        r, g, b = pixel(image, *centre(el))
        assert r > 180 and g < 90 and b < 90, (case, (r, g, b))
    # nothing red outside the overflow boxes: sample the bars' columns below the card's total
    red_spans = [(float(o.get("y")) - 2, float(o.get("y")) + float(o.get("height")) + 2) for o in overflow]
    total_y = float(next(el for el in root.iter(f"{NS}line") if el.get("class") == "total").get("y1"))
    bottom = int(float(root.get("data-bottom")))
    for el in rects(root, "seg-weights"):
        x, _ = centre(el)
        for y in range(int(total_y) + 3, bottom - 2, 4):
            if any(lo <= y <= hi for lo, hi in red_spans):
                continue
            r, g, b = pixel(image, x, y)
            assert not (r > 180 and g < 90 and b < 90), (case, x, y)


def test_card_total_line_is_drawn(rendered):
    root, image, _ = rendered["rtx2070-dual"]
    line = next(el for el in root.iter(f"{NS}line") if el.get("class") == "total")
    x = int(float(line.get("x1"))) + 5
    y = round(float(line.get("y1")))
    assert any(sum(pixel(image, x, yy)) < 200 for yy in (y - 1, y, y + 1))
