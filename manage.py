#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.local")
    # Before Django loads the apps: daphne's app creates the node's loop through the policy then.
    from mostro_site.config.event_loop import install_for_command

    install_for_command(sys.argv)
    from django.core.management import execute_from_command_line

    argv = sys.argv
    if argv[1:2] == ["import_mostrod"]:
        # There `--settings` names mostrod's settings.toml, not a Django settings module.
        argv = [arg.replace("--settings", "--toml", 1) if arg.split("=")[0] == "--settings" else arg for arg in argv]
    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
