"""Job-cluster metrics: runs, failures and durations of every django-q2 task, by function."""

from prometheus_client import Counter, Histogram

JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 240.0)

JOB_RUNS = Counter("mostro_job_runs", "django-q2 task runs, by job (dotted function) and outcome.", ["job", "outcome"])
JOB_SECONDS = Histogram("mostro_job_duration_seconds", "django-q2 task run time, by job.", ["job"], buckets=JOB_BUCKETS)


def job_finished(*, job: str, success: bool, seconds: float) -> None:
    JOB_RUNS.labels(job=job, outcome="success" if success else "failure").inc()
    JOB_SECONDS.labels(job=job).observe(seconds)
