"""`/metrics`: the persisted counters of every process plus the state gauges, in Prometheus text.

The metric families (name, type, help) are the ones the code declares with prometheus-client
(`METRIC_MODULES`); their values come from `MetricSeries` (sums over all processes), never
from this process's memory, so any web process answers for the whole node.
"""

import importlib
import json
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from mostro_site.ops.models import MetricSeries
from mostro_site.ops.persist import COUNTED_SUFFIXES, PREFIX
from mostro_site.ops.state_metrics import state_families

# Every module that declares `mostro_` counters or histograms (importing it registers them).
METRIC_MODULES = ("nostrbridge.metrics", "lightning.metrics", "mostro_site.ops.job_metrics")


def declared_families() -> dict[str, tuple[str, str]]:
    """Family name → (type, help) of the counters and histograms the code declares."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    return {
        family.name: (family.type, family.documentation)
        for family in REGISTRY.collect()
        if family.name.startswith(PREFIX) and family.type in COUNTED_SUFFIXES
    }


def _family_of(sample_name: str, declared: dict[str, tuple[str, str]]) -> str | None:
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample_name.endswith(suffix) and sample_name.removesuffix(suffix) in declared:
            return sample_name.removesuffix(suffix)
    return None


def _sort_key(sample: tuple[str, dict[str, str], float]) -> tuple:
    """Buckets of one label set together, by `le`, then `_count` and `_sum` (the text format's order)."""
    name, labels, _ = sample
    series = sorted((key, value) for key, value in labels.items() if key != "le")
    le = labels.get("le")
    return (series, 0 if le is not None else 1, float(le) if le is not None else 0.0, name)


def persisted_families() -> Iterator[Metric]:
    declared = declared_families()
    samples: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
    for name, labels_json, value in MetricSeries.objects.values_list("name", "labels", "value"):
        family = _family_of(name, declared)
        if family is not None:
            samples[family].append((name, json.loads(labels_json), value))
    for family, rows in sorted(samples.items()):
        kind, documentation = declared[family]
        metric = Metric(family, documentation, kind)
        for name, labels, value in sorted(rows, key=_sort_key):
            metric.add_sample(name, labels, value)
        yield metric


class NodeCollector:
    def collect(self) -> Iterator[Metric]:
        yield from persisted_families()
        yield from state_families()


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector())
    return generate_latest(registry)
