"""The all-in-one node behind `manage.py mostrod`: web, relay bridge, watcher, jobs."""
