"""`manage.py demo_trade`: two simulated traders run a full trade against the local node."""
