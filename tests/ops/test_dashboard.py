"""The Grafana dashboard in docs/ only asks for metrics the node exports."""

import json
import re

import pytest

from mostro_site.ops.exporter import declared_families
from mostro_site.ops.state_metrics import state_families
from tests.relays.net import REPO_ROOT

DASHBOARD = REPO_ROOT / "docs" / "grafana" / "mostro-node.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


@pytest.mark.django_db
def test_every_dashboard_query_names_an_exported_metric():
    exported = {f"{name}{suffix}" for name, (kind, _) in declared_families().items() for suffix in SUFFIXES[kind]}
    for family in state_families():
        exported |= {f"{family.name}_total" if family.type == "counter" else family.name}
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for query in queries for name in re.findall(r"\bmostro_[a-z_]+", query)}

    assert len(queries) >= 30
    assert sorted(used - exported) == []
    # every exported family is on the dashboard somewhere
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in exported}
    assert sorted(families - {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}) == []
