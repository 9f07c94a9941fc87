"""`manage.py maintenance on --reason "…" | off | status`: maintenance ("drain") mode from a shell.

`status` prints the state and the drain counters and exits 0 whatever they say (a script reads
the `drained:` line); docs/OPERATIONS.md "Maintenance mode" is the procedure.
"""

from django.core.management.base import BaseCommand, CommandError

from mostro_site.operator.maintenance import MaintenanceStatus, maintenance_set, maintenance_status


def status_lines(status: MaintenanceStatus) -> list[str]:
    counters = status.counters
    lines = [
        f"maintenance: {'on' if status.enabled else 'off'}",
        f"reason: {status.reason}",
        f"since: {status.since.isoformat() if status.since else ''}",
        f"escrowed_orders: {counters.escrowed_orders}",
        f"inflight_payouts: {counters.inflight_payouts}",
        f"inflight_dev_fees: {counters.inflight_dev_fees}",
        f"open_bonds: {counters.open_bonds}",
        f"pending_bond_payouts: {counters.pending_bond_payouts}",
        f"pending_orders: {counters.pending_orders}",
        f"drained: {'yes' if status.drained else 'no'}",
    ]
    if status.safe_to_stop:
        lines.append("drained: safe to stop the node or change the Lightning node")
    return lines


class Command(BaseCommand):
    help = "Switch maintenance (drain) mode on or off, or print its status and the drain counters."
    requires_system_checks: list = []  # usable on a node whose other settings are being fixed

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="command", required=True)
        on = sub.add_parser("on", help="refuse new orders and takes; open trades keep running")
        on.add_argument("--reason", default=None, help="the operator's note (never published)")
        sub.add_parser("off", help="accept new orders again")
        sub.add_parser("status", help="print the state and the drain counters")

    def handle(self, *args, **options):
        command = options["command"]
        if command in ("on", "off"):
            try:
                changed = maintenance_set(enabled=command == "on", reason=options.get("reason"), via="command line")
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"maintenance {command}" if changed else f"maintenance already {command}")
        for line in status_lines(maintenance_status()):
            self.stdout.write(line)
