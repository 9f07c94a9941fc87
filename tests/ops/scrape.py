"""Reading `/metrics` back: the exposition parsed into {(sample, labels): value}."""

from prometheus_client.parser import text_string_to_metric_families

METRICS_TOKEN = "scrape-token-for-tests"


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def pick(samples: dict, name: str) -> dict[frozenset, float]:
    """{labels: value} of one sample name."""
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def labels(**values: str) -> frozenset:
    return frozenset(values.items())
