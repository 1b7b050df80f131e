"""``python -m bench routing --surge-groups``: surge grouping's quality and alert counts.

1. Precision and recall of grouping on the labelled set (``tests/surge/labelled.yaml``) under
   ten different keys (the signature is keyed, so the estimate moves a little with the key).
2. The surge of ``tests/surge/scenario.py`` (500 tips about one threat, 50 unrelated, one
   school, five simulated minutes), taken in through the real intake service and routed by
   ``route_job`` in this process (the directory's default plan, on a fresh PostgreSQL
   database), once with grouping and once without: routing's alert chains and alerts (one per
   contact), the "N more tips" notices, grouping quality, and tips lost.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta

import yaml
from sqlalchemy.orm import Session

from tests.surge import scenario
from tipline import crypto, migrations
from tipline.crypto import KeyRing, Vault
from tipline.db import make_engine, utcnow
from tipline.directory.loader import load_directory_file
from tipline.jobs import RecordingQueue
from tipline.surge import quality
from tipline.surge import services as surge
from tipline.surge.match import MIN_SHARED, THRESHOLD


def labelled_quality(repo: object) -> None:
    from pathlib import Path

    data = yaml.safe_load((Path(str(repo)) / "tests" / "surge" / "labelled.yaml")
                          .read_text("utf-8"))["schools"]
    keys = [hashlib.sha256(f"bench-{i}".encode()).digest() * 2 for i in range(10)]
    runs = [quality.evaluate(data, k) for k in keys]
    print(f"labelled set: {runs[0].tips} tips, {runs[0].pairs_true} same-threat pairs; "
          f"threshold {THRESHOLD}, at least {MIN_SHARED} shared features; 10 keys:")
    print(f"  precision mean {statistics.mean(r.precision for r in runs):.3f} "
          f"min {min(r.precision for r in runs):.3f}; recall mean "
          f"{statistics.mean(r.recall for r in runs):.3f} "
          f"min {min(r.recall for r in runs):.3f}", flush=True)


DB = "tipline_bench_surge"  # its own database: the delivery bench may run beside it
URL = f"postgresql://postgres@127.0.0.1:5432/{DB}"


def _fresh(psql: Callable[..., None]) -> None:
    _drop(psql)
    psql(f'CREATE DATABASE "{DB}"')
    migrations.upgrade(URL)


def _drop(psql: Callable[..., None]) -> None:
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
         "AND pid <> pg_backend_pid()", n=DB)
    psql(f'DROP DATABASE IF EXISTS "{DB}"')


def one_run(psql: Callable[..., None], directory: object, grouping: bool) -> None:
    _fresh(psql)
    url = URL
    vault = Vault(KeyRing.generate())
    crypto.install(vault)
    engine = make_engine(url, pool_size=2)
    surge.GROUPING = grouping
    try:
        with Session(engine) as s:
            load_directory_file(s, directory)  # type: ignore[arg-type]
            s.commit()
            items = scenario.tips(random.Random(14))
            t0 = time.perf_counter()
            res = scenario.run(s, vault, RecordingQueue(), items, utcnow())
            took = time.perf_counter() - t0
            threat = [i for i in items if i.kind != "unrelated"]
            lead = res.group_ids[items[0].tip_id]
            in_group = [i for i in threat if lead is not None and res.group_ids[i.tip_id] == lead]
            wrong = [i for i in items if i.kind == "unrelated" and lead is not None
                     and res.group_ids[i.tip_id] == lead]
            unrelated_alerted = sum(1 for i in items if i.kind == "unrelated" and i.alerted)
            higher_first = next((i for i in threat if i.kind == "higher"), None)
            print(f"grouping {'ON ' if grouping else 'OFF'}: {len(items)} tips in {took:.1f} s; "
                  f"alert chains {res.alert_chains} (alerts to contacts {res.alerts}), "
                  f"'more tips' notices {res.notices}; threat tips in one group "
                  f"{len(in_group)}/{len(threat)}, unrelated in it {len(wrong)}, unrelated "
                  f"alerted {unrelated_alerted}/50, first more severe tip alerted "
                  f"{bool(higher_first and higher_first.alerted)}, jobs not routed "
                  f"{res.not_routed}", flush=True)
    finally:
        surge.GROUPING = True
        engine.dispose()


def run(repo: object, psql: Callable[..., None], directory: object) -> None:
    labelled_quality(repo)
    print(f"surge: 500 tips about one threat + 50 unrelated, one school, "
          f"{timedelta(minutes=5)} simulated; notices every {surge.NOTICE_EVERY}", flush=True)
    try:
        for grouping in (True, False):
            one_run(psql, directory, grouping)
    finally:
        _drop(psql)
