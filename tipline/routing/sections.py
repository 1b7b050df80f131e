"""One district's section of the routing policy file: cut it out, and put it back.

An installation has one policy file, but a district admin changes only their own district's
section (DESIGN.md invariant 6). The dashboard gives them that section as a small policy
document (``districts:`` with their one key), and a saved section replaces exactly that
district's lines of the active file: the other districts, ``no_school`` and every comment
outside the section stay as they were, byte for byte. Nothing here imports Flask or the
database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["SectionError", "editor_text", "put_back", "top_level_lines"]


class SectionError(ValueError):
    """The section cannot be cut out or put back without touching other lines."""


@dataclass(frozen=True)
class _Span:
    start: int  # first line (0-based): the comment lines directly above the key, then the key
    end: int  # one past the section's last line of content
    indent: int  # the key's column


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _last_line(node: yaml.Node) -> int:
    """The last line (0-based) holding content of ``node`` (not the next token's line)."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        else:
            children = list(node.value)
        return max((_last_line(c) for c in children), default=node.start_mark.line)
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def _districts(text: str) -> tuple[dict[str, _Span], int] | None:
    """Each district key's span, and the line after the last one; None if not block style."""
    root = _compose(text)
    if not isinstance(root, yaml.MappingNode):
        return None
    node = next((v for k, v in root.value if getattr(k, "value", None) == "districts"), None)
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        return None
    lines = text.splitlines()
    spans: dict[str, _Span] = {}
    end = node.start_mark.line
    for k, v in node.value:
        line, col = k.start_mark.line, k.start_mark.column
        if not isinstance(k, yaml.ScalarNode) or lines[line][:col].strip():
            return None
        start = line
        while start > 0 and lines[start - 1].strip().startswith("#"):
            start -= 1
        last = max(_last_line(v), line) + 1
        spans[str(k.value)] = _Span(start, last, col)
        end = max(end, last)
    return spans, end


def top_level_lines(text: str) -> dict[str, int]:
    """The line (1-based) of each top-level key and of each district key, for messages."""
    root = _compose(text)
    out: dict[str, int] = {}
    if not isinstance(root, yaml.MappingNode):
        return out
    for k, v in root.value:
        out[str(getattr(k, "value", ""))] = k.start_mark.line + 1
        if getattr(k, "value", None) == "districts" and isinstance(v, yaml.MappingNode):
            for dk, _dv in v.value:
                out[f"districts.{getattr(dk, 'value', '')}"] = dk.start_mark.line + 1
    return out


def _shift(lines: list[str], by: int) -> list[str]:
    """Indent every line by ``by`` columns (negative: remove up to that many spaces)."""
    if by >= 0:
        return [(" " * by + x) if x.strip() else x for x in lines]
    cut = -by
    return [x[min(cut, len(x) - len(x.lstrip(" "))):] for x in lines]


def editor_text(full: str, code: str, header: str = "") -> str:
    """District ``code``'s section of ``full`` as a policy document of its own."""
    found = _districts(full)
    lines = full.splitlines(keepends=True)
    if found is None or code not in found[0]:
        body = [f"  {code}:\n"]
    else:
        span = found[0][code]
        body = _shift(lines[span.start:span.end], 2 - span.indent)
        if body and not body[-1].endswith("\n"):
            body[-1] += "\n"
    return header + "districts:\n" + "".join(body)


def put_back(full: str, submitted: str, code: str) -> str:
    """``full`` with district ``code``'s section replaced by the one in ``submitted``.

    The result is read back and compared with what was meant (``full``'s data with that one
    district's replaced); anything else raises SectionError rather than store a file that
    differs elsewhere.
    """
    base, mine = _districts(full), _districts(submitted)
    if base is None or mine is None or code not in mine[0]:
        raise SectionError("the section could not be put back into the policy file")
    spans, end = base
    src = mine[0][code]
    sub_lines = submitted.splitlines(keepends=True)
    section = sub_lines[src.start:src.end]
    if section and not section[-1].endswith("\n"):
        section[-1] += "\n"
    lines = full.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if code in spans:
        at = spans[code]
        new = lines[:at.start] + _shift(section, at.indent - src.indent) + lines[at.end:]
    else:
        indent = next(iter(spans.values())).indent if spans else 2
        new = lines[:end] + _shift(section, indent - src.indent) + lines[end:]
    merged = "".join(new)
    expected: dict[str, Any] = yaml.safe_load(full) or {}
    expected.setdefault("districts", {})[code] = (yaml.safe_load(submitted) or {})[
        "districts"][code]
    try:
        same = yaml.safe_load(merged) == expected
    except yaml.YAMLError:
        same = False
    if not same:
        raise SectionError("the section could not be put back into the policy file without "
                           "changing other lines")
    return merged
