"""Operations tables: persisted metric counters, process heartbeats, the recorded LND node."""

from django.db import models


class MetricSeries(models.Model):
    """One counter sample (a `_total`, a histogram `_bucket`/`_count`/`_sum`), summed over processes.

    Each process adds its own increments (`mostro_site.ops.persist`); `/metrics` reads the sums.
    `labels` is the sorted label set as compact JSON.
    """

    name = models.CharField(max_length=200)
    labels = models.CharField(max_length=500, default="{}")
    value = models.FloatField(default=0.0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_series_unique")]
        verbose_name_plural = "metric series"

    def __str__(self) -> str:
        return f"{self.name}{self.labels} = {self.value}"


class ProcessHeartbeat(models.Model):
    """A long-running process (web, bridge, watcher, node, job cluster) saying it is alive."""

    instance = models.CharField(max_length=200, unique=True)  # host:pid, or the job cluster's name
    role = models.CharField(max_length=20, db_index=True)
    host = models.CharField(max_length=120, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.role} {self.instance}"


class RecordedLightningNode(models.Model):
    """The LND node this Mostro node trades on, recorded the first time it answered.

    Its escrows, payouts and dev-fee payments live on that node: `/readyz` and `manage.py doctor`
    fail when LND answers with another identity (a wrong LND_GRPC_HOST, a restored or replaced
    node). `manage.py doctor --accept-lnd-identity` records the current one after a deliberate
    change. One row.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    pubkey = models.CharField(max_length=66)
    alias = models.CharField(max_length=100, blank=True, default="")
    network = models.CharField(max_length=20, blank=True, default="")
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="recorded_lnd_single_row")]

    def __str__(self) -> str:
        return f"{self.alias or 'LND'} {self.pubkey[:16]}… ({self.network})"
