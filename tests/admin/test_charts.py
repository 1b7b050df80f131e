from __future__ import annotations

import xml.etree.ElementTree as ET

from tipline.admin.charts import bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_chart_is_accessible_svg_with_escaped_labels() -> None:
    svg = str(bar_chart("c1", "Tips <by> school", [("<img src=x onerror=alert(1)>", 3),
                                                     ("B", 6)]))
    root = ET.fromstring(  # noqa: S314
        svg)  # well-formed
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "Tips <by> school"
    assert "<img" not in svg and "&lt;img" in svg
    assert "style" not in svg and "<script" not in svg
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths == [170.0, 340.0]  # scaled to the largest value


def test_empty_chart_says_so() -> None:
    root = ET.fromstring(  # noqa: S314
        str(bar_chart("c2", "Nothing", [])))
    assert "No data" in root.find(f"{SVG}desc").text
    assert list(root.iter(f"{SVG}rect")) == []
