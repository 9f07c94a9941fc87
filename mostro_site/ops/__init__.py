"""Operations: metrics, health and readiness, structured logs, backups (issue 19).

A Django app of its own (label `ops`) inside the project shell: its tables (persisted metric
counters, process heartbeats, the recorded LND identity) and migrations stay apart from the
node's settings. See docs/OPERATIONS.md.
"""
