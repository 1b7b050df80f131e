"""docs/operations.md ships alert rules and a Grafana dashboard: both parse, and every
tipline metric they name is one the metrics endpoint really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from tipline.ops import metrics  # noqa: F401  (registers the counters and histograms)
from tipline.ops.state import StateCollector

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "ops" / "tipline-alerts.yml"
DASHBOARD = ROOT / "docs" / "ops" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
                                                               "_created"), "gauge": ("",)}


def exposed(settings, connection) -> set[str]:
    names = set()
    families = [*REGISTRY.collect(), *StateCollector(settings, bind=connection).collect()]
    for family in families:
        if family.name.startswith("tipline_"):
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def named(expr: str) -> set[str]:
    return set(re.findall(r"\btipline_[a-z_]+\b", expr))


def test_alert_rules_parse_and_name_only_real_metrics(settings, connection) -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    real = exposed(settings, connection)
    alerts = {r["alert"] for r in rules}
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        unknown = named(rule["expr"]) - real
        assert not unknown, (rule["alert"], unknown)
    # The examples: life-safety unacknowledged 10 min, routing failures, no tips for
    # a day, the key file unreadable.
    assert {"TiplineLifeSafetyTipUnacknowledged", "TiplineRoutingFailed",
            "TiplineNoTipsForADay", "TiplineKeyFileUnreadable"} <= alerts
    life = next(r for r in rules if r["alert"] == "TiplineLifeSafetyTipUnacknowledged")
    assert "> 600" in life["expr"]


def test_dashboard_parses_and_names_only_real_metrics(settings, connection) -> None:
    dash = json.loads(DASHBOARD.read_text())
    real = exposed(settings, connection)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert exprs
    used = set().union(*(named(e) for e in exprs))
    assert not used - real, used - real
    # Every family the endpoint exposes is on the dashboard.
    families = {re.sub(r"_(total|created|bucket|count|sum)$", "", n) for n in real}
    shown = {re.sub(r"_(total|created|bucket|count|sum)$", "", n) for n in used}
    assert families <= shown, families - shown


def test_operations_doc_points_at_both_files() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert "docs/ops/tipline-alerts.yml" in doc and "docs/ops/grafana-dashboard.json" in doc
    for rule in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]:
        assert rule["alert"] in doc, rule["alert"]
