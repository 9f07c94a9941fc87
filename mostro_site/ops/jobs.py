"""The job cluster's heartbeat: a scheduled job, so it proves the scheduler and a worker both run."""

import socket

from django.conf import settings

from mostro_site.ops.persist import heartbeat_touch


def job_cluster_heartbeat() -> dict[str, str]:
    instance = f"cluster:{settings.Q_CLUSTER.get('name', 'mostro')}@{socket.gethostname()}"
    heartbeat_touch(role="jobs", instance=instance, host=socket.gethostname())
    return {"instance": instance}
