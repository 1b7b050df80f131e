"""The release this code is, and the schema revision each past release shipped with.

There are no git tags: this file is the record. ``tipline --version`` and the staff footer
show ``__version__``; the upgrade test installs ``PREVIOUS_RELEASE``'s schema with data and
upgrades it to the current head. Add a line to ``RELEASES`` at every release
(docs/operations.md, "Release checklist").
"""

from __future__ import annotations

# The single source of the version: pyproject.toml reads it from here (setuptools ``attr``).
__version__ = "0.10.0"

# (version, the newest migration that release shipped)
RELEASES: tuple[tuple[str, str], ...] = (
    ("0.9.0", "0010"),
    (__version__, "head"),  # this release: whatever the newest migration is
)
PREVIOUS_RELEASE, PREVIOUS_SCHEMA = RELEASES[-2]
