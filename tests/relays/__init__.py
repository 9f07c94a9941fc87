"""Real Nostr relays for tests: nostr-sdk's LocalRelay (in-process or subprocess) and the
Python `nostr-relay` package (subprocess, SQLite). Fixtures live in `tests.relays.fixtures`.

Nothing here imports Django or pytest at module level, because `python -m tests.relays.local_relay`
runs this package outside the test runner.
"""
