"""List the benchmarks, or run one: `python -m bench NAME [ARGS...]`."""

from __future__ import annotations

import pkgutil
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        print("benchmarks:", ", ".join(names) or "(none)")
        print("run one with: python -m bench NAME [ARGS...]")
        return
    name = sys.argv[1]
    sys.argv = [f"bench.{name}", *sys.argv[2:]]
    runpy.run_module(f"bench.{name}", run_name="__main__")


if __name__ == "__main__":
    main()
