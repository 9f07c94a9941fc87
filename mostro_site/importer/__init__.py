"""Migration from the Rust mostrod: its settings.toml and SQLite database (`manage.py import_mostrod`)."""
