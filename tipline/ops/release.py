"""The release this code is, and the schema revision each past release shipped with.

There are no git tags: this file is the record. ``tipline --version`` and the staff footer
show ``__version__``; the upgrade test installs ``PREVIOUS_RELEASE``'s schema with data and
upgrades it to the current head. Add a line to ``RELEASES`` at every release
(docs/operations.md, "Release checklist").
"""

from __future__ import annotations

from importlib import metadata

# (version, the newest migration that release shipped)
RELEASES: tuple[tuple[str, str], ...] = (
    ("0.9.0", "0010"),
    ("0.10.0", "head"),
)


def _installed_version() -> str:
    try:
        return metadata.version("tipline")
    except metadata.PackageNotFoundError:
        return RELEASES[-1][0]


__version__ = _installed_version()
PREVIOUS_RELEASE, PREVIOUS_SCHEMA = RELEASES[-2]
