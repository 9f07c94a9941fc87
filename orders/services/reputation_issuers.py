"""The trust list's one rule set (docs/PROTOCOL.md §Trust-list), applied by the operator page, its
save service and the boot check.

Imports are deduplicated on an entry's name, so renaming an entry, or moving a key to another
entry, once imports exist under the old name would let every account it imported import again:
both are refused (mostrod refuses to start in that state).
"""

from mostro_site.models import ReputationImport, ReputationIssuer, ReputationIssuerKey
from nostrbridge.node_identity import node_pubkey_or_none, reputation_issuer_keys
from nostrbridge.protocol.errors import InvalidKey
from nostrbridge.protocol.keys import parse_public_key

MAX_NAME_LENGTH = 64


def parse_key_texts(texts: list[str]) -> tuple[list[str], list[str]]:
    """(the keys as lowercase hex without repeats, one message per text that is not a key)."""
    keys: list[str] = []
    errors = []
    for text in texts:
        try:
            key = parse_public_key(text.strip())
        except InvalidKey as exc:
            errors.append(f"{text!r} is not a public key (npub or 64 hex characters): {exc}.")
            continue
        if key not in keys:
            keys.append(key)
    return keys, errors


def issuer_entry_errors(
    *, name: str, keys: list[str], instance: ReputationIssuer | None = None
) -> dict[str, list[str]]:
    """Field → messages for an entry called `name` with `keys` (npub or hex texts); {} if valid."""
    errors: dict[str, list[str]] = {"name": _name_errors(name, instance), "keys": []}
    parsed, errors["keys"] = parse_key_texts(keys)
    if not keys:
        errors["keys"].append("Give at least one key (npub or hex).")
    issuer = reputation_issuer_keys()
    own = None if issuer is None else issuer.public_key_hex
    node = node_pubkey_or_none()
    for key in parsed:
        errors["keys"] += _key_errors(key, name=name, instance=instance, node=node, own=own)
    return {field: messages for field, messages in errors.items() if messages}


def _name_errors(name: str, instance: ReputationIssuer | None) -> list[str]:
    if not name:
        return ["Give the issuer a name."]
    if name != name.strip():
        return ["No spaces at the start or the end: imports are deduplicated on the exact name."]
    if len(name) > MAX_NAME_LENGTH:
        return [f"At most {MAX_NAME_LENGTH} characters."]
    others = ReputationIssuer.objects.filter(name=name)
    if instance is not None:
        others = others.exclude(pk=instance.pk)
    if others.exists():
        return [f"Another issuer is already called “{name}”."]
    if instance is not None and name != instance.name:
        count = ReputationImport.objects.filter(issuer_name=instance.name).count()
        if count:
            return [
                f"{count} import(s) were recorded under “{instance.name}”: renamed, those accounts could import again."
            ]
    return []


def _key_errors(
    key: str, *, name: str, instance: ReputationIssuer | None, node: str | None, own: str | None
) -> list[str]:
    if key == node:
        return [f"{key} is this node's own key."]
    if key == own:
        return [f"{key} is this node's issuer key: a node never trusts itself (a user could double a reputation)."]
    holders = ReputationIssuerKey.objects.filter(pubkey=key).select_related("issuer")
    holder = (holders.exclude(issuer=instance) if instance is not None else holders).first()
    if holder is not None:
        return [f"{key} already belongs to issuer “{holder.issuer.name}”."]
    recorded = ReputationImport.objects.filter(issuer_key=key).exclude(issuer_name=name)
    names = sorted(set(recorded.values_list("issuer_name", flat=True)))
    if names:
        quoted = ", ".join(f"“{n}”" for n in names)
        return [f"{key} has imports recorded under {quoted}: under another name those accounts could import again."]
    return []
