"""django-q2 signal receivers: job metrics, log context, and the metrics flusher in workers.

`pre_execute` and `post_execute_in_worker` run in the worker process around each task (also
inline in a synchronous cluster); `post_spawn` once per new worker (its start: the LND network).
"""

import time

from django_q.conf import Conf
from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

from mostro_site.ops import job_metrics
from nostrbridge.event_settings import lnd_network_fetch
from nostrbridge.log_context import bind, set_process_role, unbind
from orders.services.payout_queue import task_row_finished, task_row_started

_running: dict[str, tuple[float, list]] = {}  # task id → (monotonic start, log-context tokens)


def job_name(func: object) -> str:
    if isinstance(func, str):
        return func
    module, name = getattr(func, "__module__", ""), getattr(func, "__qualname__", repr(func))
    return f"{module}.{name}" if module else name


def on_spawn(sender, proc_name: str = "", **kwargs) -> None:
    from mostro_site.ops.persist import start_for_process
    from mostro_site.runtime.cluster import install_job_lookup_cache

    if Conf.SYNC:
        return  # a synchronous cluster runs tasks inline in the calling process: not a new worker
    set_process_role("jobs")
    install_job_lookup_cache()
    start_for_process()
    lnd_network_fetch()  # once per worker process, before its first job's transaction


def on_pre_execute(sender, func=None, task: dict | None = None, **kwargs) -> None:
    task = task or {}
    task_row_started(task)
    order_id = (task.get("kwargs") or {}).get("order_id")
    tokens = bind(job=job_name(task.get("func", func)), order_id=order_id)
    _running[task.get("id", "")] = (time.monotonic(), tokens)


def on_post_execute(sender, func=None, task: dict | None = None, **kwargs) -> None:
    task = task or {}
    task_row_finished(task)  # the same dict goes to the monitor next
    started, tokens = _running.pop(task.get("id", ""), (None, []))
    if started is not None:
        job_metrics.job_finished(
            job=job_name(task.get("func", func)), success=bool(task.get("success")), seconds=time.monotonic() - started
        )
    try:
        unbind(tokens)
    except ValueError:
        pass  # a token from another context (the task ran elsewhere): nothing to reset here


def connect() -> None:
    post_spawn.connect(on_spawn, dispatch_uid="mostro-ops-spawn")
    pre_execute.connect(on_pre_execute, dispatch_uid="mostro-ops-pre-execute")
    post_execute_in_worker.connect(on_post_execute, dispatch_uid="mostro-ops-post-execute")
