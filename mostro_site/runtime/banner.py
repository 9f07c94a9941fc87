"""The startup banner: what an operator needs to see once the node is up."""

from mostro_site.operator.lnstatus import LightningStatus
from nostrbridge.node_identity import encode_npub, node_pubkey

BANNER_FIRST_LINE = "Mostro node is running"


def startup_banner(
    *,
    base_url: str,
    relays: tuple[str, ...],
    lightning: LightningStatus,
    bridge: bool,
    protocol_version: int,
    event_loop: str,
) -> str:
    if lightning.available:
        ln = f"{lightning.alias or '(no alias)'} on {lightning.network or '?'}, block {lightning.block_height}"
        if lightning.channel_balance_sats is not None:
            ln += f", channel balance {lightning.channel_balance_sats:,} sats"
    else:
        ln = f"unavailable ({lightning.error})"
    relay_note = "" if bridge else "  (relay bridge off: --no-bridge)"
    lines = [
        BANNER_FIRST_LINE,
        f"  npub:       {encode_npub(node_pubkey())}",
        f"  relays:     {', '.join(relays) or '(none)'}{relay_note}",
        f"  protocol:   v{protocol_version}",
        f"  lightning:  {ln}",
        f"  loop:       {event_loop}",
        f"  admin:      {base_url}/admin/",
        f"  operator:   {base_url}/operator/  (dashboard) · {base_url}/operator/settings/",
        "  Stop with Ctrl-C (or SIGTERM): running work finishes first.",
    ]
    width = max(len(line) for line in lines)
    rule = "=" * min(width, 100)
    return "\n".join([rule, *lines, rule])
