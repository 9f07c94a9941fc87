"""Protocol throughput: ours vs nostr-sdk 0.45.1 vs the libsecp256k1 limit, one core.

Run: .venv/bin/python benchmarks/bench_protocol.py [--events N] [--rounds R] [--breakdown] [--pipeline]

Every workload runs on the same prepared events. Rounds are interleaved (ours, nostr-sdk,
limit, ours, ...), each round is timed in process CPU time (time spent descheduled by a
noisy neighbour does not count) and the best round of each workload is reported, so
disturbances hit all candidates alike. The process is pinned to a single CPU.

Workloads
* v1 unwrap: gift wrap JSON → verified, parsed `Unwrapped` (ours: `open_inbound`, i.e. wrap
  id + signature, wrap ECDH + decrypt, seal id + signature, seal decrypt with the cached
  identity conversation key, rumor id, content parse, trade signature over the canonical
  re-serialization, `verify()`); nostr-sdk: `Event.from_json` + `verify` +
  `UnwrappedGift.from_gift_wrap` + `json.loads` of the rumor content (it checks fewer
  things: no trade signature, no message validation). The events are full-privacy wraps
  with a trade signature, because nostr-sdk refuses a seal signer different from the
  rumor author; ours is also measured on reputation-mode wraps. The parsed-key cache is
  cleared before each round of ours, so every wrap's ephemeral key is parsed as new (as in
  production) instead of being found in the cache from the second round on.
* v2 unwrap: kind-14 JSON → `Unwrapped` (event id + signature, cached conversation key,
  decrypt, parse, trade signature, identity proof); nostr-sdk: `Event.from_json` + `verify`
  + `nip44_decrypt` + `json.loads` (no inner signatures).
* v1 / v2 wrap: a node reply (`new-order` ack) from message object to event JSON.
  nostr-sdk v1: `nip59_make_gift_wrap` of an unsigned kind-1 rumor; v2: `nip44_encrypt` +
  `EventBuilder(14).finalize`.
* limit: the libsecp256k1 operations each message needs, measured in a tight loop on fresh
  keys: v1 unwrap = 3 verifies + 2 ECDH, v2 unwrap = 3 verifies + 1 ECDH, v1 wrap = 2 signs
  + 2 ECDH + 1 key generation, v2 wrap = 1 sign + 1 ECDH; once through coincurve's public
  API (the reference) and once as bare C calls (parse + operation; signing with a prepared
  keypair, because coincurve's `sign_schnorr` rebuilds the keypair and re-verifies).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Run as a script from any directory: the project root holds the `nostrbridge` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nostr_sdk as sdk  # noqa: E402
from coincurve import PrivateKey, PublicKey, PublicKeyXOnly  # noqa: E402

from nostrbridge.protocol import (  # noqa: E402
    Event,
    Keys,
    Message,
    giftwrap,
    inbound,
    nip44,
    open_inbound,
    reply_v1,
    reply_v2,
    secp,
    transport,
    wrap_v1,
    wrap_v2,
)

VECTORS = os.environ.get(
    "MOSTRO_VECTORS", str(Path(__file__).resolve().parents[1] / "tests" / "vectors" / "mostro.vectors.json")
)


class Bench:
    """Interleaved rounds; keeps the best (least disturbed) round of each workload."""

    def __init__(self) -> None:
        self.workloads: list[tuple[str, Sequence[object], Callable[[object], object], Callable[[], object]]] = []
        self.rounds: dict[str, list[float]] = {}

    def add(
        self,
        name: str,
        items: Sequence[object],
        func: Callable[[object], object],
        reset: Callable[[], object] = lambda: None,
    ) -> None:
        """`reset` runs untimed before each round (to forget what earlier rounds cached)."""
        self.workloads.append((name, items, func, reset))
        self.rounds[name] = []

    def run(self, rounds: int) -> None:
        for _ in range(rounds):
            for name, items, func, reset in self.workloads:
                reset()
                gc.collect()
                start = time.process_time()
                for item in items:
                    func(item)
                self.rounds[name].append(time.process_time() - start)

    def ops_per_second(self, name: str) -> float:
        count = next(len(items) for label, items, _, _ in self.workloads if label == name)
        return count / min(self.rounds[name])


def _load_vectors() -> dict:
    with open(VECTORS, encoding="utf-8") as handle:
        return json.load(handle)


def _sdk_keys(keys: Keys) -> sdk.Keys:
    return sdk.Keys(sdk.SecretKey.parse(keys.secret_hex))


def prepare(count: int) -> dict:
    vectors = _load_vectors()
    key = {label: Keys.from_hex(pair["sk"]) for label, pair in vectors["keys"].items()}
    node, trade, identity = key["mostro-node"], key["alice-trade-1"], key["alice-identity"]
    request = Message.from_json(vectors["canonical_messages"]["A01_new_order_req"])
    reply = Message.from_json(vectors["canonical_messages"]["A02_new_order_ack"])
    now = int(time.time()) + 3600  # keeps every prepared event fresh for the whole run
    node_hex = node.public_key_hex
    return {
        "node": node,
        "trade": trade,
        "reply": reply,
        "now": now,
        "v1_full_privacy": [wrap_v1(request, trade, node_hex, created_at=now).to_json() for _ in range(count)],
        "v1_reputation": [
            wrap_v1(request, trade, node_hex, identity_keys=identity, created_at=now).to_json() for _ in range(count)
        ],
        "v2_reputation": [
            wrap_v2(request, trade, node_hex, identity_keys=identity, created_at=now).to_json() for _ in range(count)
        ],
    }


# Each gift wrap is signed by a fresh ephemeral key, parsed once in production; the same
# 1000 prepared wraps would find their keys in the parsed-key cache from the second round on.
_FORGET_PARSED_KEYS = secp.parse_xonly.cache_clear


def add_ours(bench: Bench, data: dict) -> None:
    node, now, reply, recipient = data["node"], data["now"], data["reply"], data["trade"].public_key_hex
    bench.add(
        "v1 unwrap ours",
        data["v1_full_privacy"],
        lambda e: open_inbound(e, node, transport_version=1, now=now),
        _FORGET_PARSED_KEYS,
    )
    bench.add(
        "v1 unwrap ours (reputation mode)",
        data["v1_reputation"],
        lambda e: open_inbound(e, node, transport_version=1, now=now),
        _FORGET_PARSED_KEYS,
    )
    bench.add("v2 unwrap ours", data["v2_reputation"], lambda e: open_inbound(e, node, transport_version=2, now=now))
    outbound = range(len(data["v1_full_privacy"]))
    bench.add("v1 wrap ours", outbound, lambda _: reply_v1(reply, node, recipient).to_json())
    bench.add("v2 wrap ours", outbound, lambda _: reply_v2(reply, node, recipient).to_json())


def add_sdk(bench: Bench, data: dict) -> None:
    node = _sdk_keys(data["node"])
    node_secret = node.secret_key()
    recipient = sdk.PublicKey.parse(data["trade"].public_key_hex)
    reply = data["reply"]  # serialized with our canonical serializer on both sides

    def v1_unwrap(raw: str) -> object:
        event = sdk.Event.from_json(raw)
        if not event.verify():
            raise ValueError("bad signature")
        return json.loads(sdk.UnwrappedGift.from_gift_wrap(node, event).rumor().content())

    def v2_unwrap(raw: str) -> object:
        event = sdk.Event.from_json(raw)
        if not event.verify():
            raise ValueError("bad signature")
        return json.loads(sdk.nip44_decrypt(node_secret, event.author(), event.content()))

    def v1_wrap(_: object) -> str:
        content = "[" + reply.with_version(1).to_json() + ",null]"
        rumor = sdk.EventBuilder(sdk.Kind(1), content).finalize_unsigned(node.public_key())
        return sdk.nip59_make_gift_wrap(node, recipient, rumor).as_json()

    def v2_wrap(_: object) -> str:
        plaintext = "[" + reply.with_version(2).to_json() + ",null,null]"
        content = sdk.nip44_encrypt(node_secret, recipient, plaintext, sdk.Nip44Version.V2)
        tags = [sdk.Tag.parse(["p", recipient.to_hex()]), sdk.Tag.parse(["expiration", str(int(time.time()))])]
        return sdk.EventBuilder(sdk.Kind(14), content).tags(tags).finalize(node).as_json()

    bench.add("v1 unwrap nostr-sdk", data["v1_full_privacy"], v1_unwrap)
    bench.add("v2 unwrap nostr-sdk", data["v2_reputation"], v2_unwrap)
    outbound = range(len(data["v1_full_privacy"]))
    bench.add("v1 wrap nostr-sdk", outbound, v1_wrap)
    bench.add("v2 wrap nostr-sdk", outbound, v2_wrap)


def add_secp(bench: Bench, count: int) -> None:
    """libsecp256k1 on fresh keys like the real workload: through coincurve's public API (the
    reference limit), and as bare C calls through the same cffi binding (parse + operation,
    prepared keypair for signing), the floor no Python wrapper can beat."""
    message = hashlib.sha256(b"bench").digest()
    secrets_ = [PrivateKey() for _ in range(count)]
    signed = [(key.public_key_xonly.format(), key.sign_schnorr(message)) for key in secrets_]
    our_secret = PrivateKey()
    even_points = [b"\x02" + pub for pub, _ in signed]
    bench.add("secp verify", signed, lambda item: PublicKeyXOnly(item[0]).verify(item[1], message))
    bench.add("secp ecdh (unhashed x)", even_points, lambda point: PublicKey(point).multiply(our_secret.secret))
    bench.add("secp ecdh (hashed, coincurve.ecdh)", even_points, lambda point: our_secret.ecdh(point))
    bench.add("secp sign", secrets_, lambda key: key.sign_schnorr(message))
    bench.add("secp keygen", range(count), lambda _: PrivateKey().public_key_xonly.format())

    parse = secp.parse_xonly.__wrapped__  # uncached: every key is new, as on a gift wrap
    keypairs = [secp.keypair_create(key.secret) for key in secrets_]
    raw_secret = our_secret.secret

    def raw_verify(item: tuple[bytes, bytes]) -> bool:
        return bool(secp.lib.secp256k1_schnorrsig_verify(secp._CTX, item[1], message, 32, parse(item[0])))

    def raw_ecdh(point: bytes) -> bytes:
        # Same C calls as secp.shared_x, minus its parse cache.
        pubkey = secp.ffi.new("secp256k1_pubkey *")
        secp.lib.secp256k1_ec_pubkey_parse(secp._CTX, pubkey, point, 33)
        secp.lib.secp256k1_ec_pubkey_tweak_mul(secp._CTX, pubkey, raw_secret)
        out, size = secp.ffi.new("unsigned char[33]"), secp.ffi.new("size_t *", 33)
        secp.lib.secp256k1_ec_pubkey_serialize(secp._CTX, out, size, pubkey, secp.lib.SECP256K1_EC_COMPRESSED)
        return bytes(secp.ffi.buffer(out, 33))

    bench.add("raw verify", signed, raw_verify)
    bench.add("raw ecdh", even_points, raw_ecdh)
    bench.add("raw sign", keypairs, lambda keypair: secp.schnorr_sign(keypair, message, bytes(32)))
    bench.add("raw keygen", range(count), lambda _: secp.keypair_xonly(secp.keypair_create(os.urandom(32))))


def _limits(rate: Callable[[str], float], prefix: str, ecdh: str) -> dict[str, float]:
    t_verify, t_ecdh = 1 / rate(f"{prefix} verify"), 1 / rate(f"{prefix} {ecdh}")
    t_sign, t_keygen = 1 / rate(f"{prefix} sign"), 1 / rate(f"{prefix} keygen")
    return {
        "v1 unwrap": 1 / (3 * t_verify + 2 * t_ecdh),
        "v2 unwrap": 1 / (3 * t_verify + 1 * t_ecdh),
        "v1 wrap": 1 / (2 * t_sign + 2 * t_ecdh + t_keygen),
        "v2 wrap": 1 / (t_sign + t_ecdh),
    }


def report(bench: Bench) -> str:
    rate = bench.ops_per_second
    limits = _limits(rate, "secp", "ecdh (unhashed x)")
    raw = _limits(rate, "raw", "ecdh")
    lines = [
        "| operation | ours (ops/s) | nostr-sdk (ops/s) | ours / nostr-sdk | coincurve limit (ops/s) "
        "| limit / ours | bare C-call limit (ops/s) | C limit / ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [(op, rate(f"{op} ours"), f"{rate(f'{op} nostr-sdk'):,.0f}", op) for op in limits]
    rows.insert(1, ("v1 unwrap, reputation mode¹", rate("v1 unwrap ours (reputation mode)"), "refused", "v1 unwrap"))
    for label, ours, theirs, op in rows:
        versus = f"{ours / rate(f'{op} nostr-sdk'):.2f}x" if theirs != "refused" else "—"
        lines.append(
            f"| {label} | {ours:,.0f} | {theirs} | {versus} | {limits[op]:,.0f} | {limits[op] / ours:.2f}x "
            f"| {raw[op]:,.0f} | {raw[op] / ours:.2f}x |"
        )
    lines += [
        "",
        "¹ seal signed by the identity key, rumor by the trade key: nostr-sdk refuses it (sender mismatch).",
        "",
        "| libsecp256k1 operation (fresh keys) | via coincurve (ops/s) | bare C calls (ops/s) |",
        "|---|---:|---:|",
    ]
    pairs = [("verify", "verify"), ("ecdh (unhashed x)", "ecdh"), ("sign", "sign"), ("keygen", "keygen")]
    for name, raw_name in pairs:
        lines.append(f"| {name} | {rate('secp ' + name):,.0f} | {rate('raw ' + raw_name):,.0f} |")
    lines.append(f"| ecdh (hashed, coincurve.ecdh) | {rate('secp ecdh (hashed, coincurve.ecdh)'):,.0f} | — |")
    return "\n".join(lines)


def figures(bench: Bench) -> dict[str, dict[str, float]]:
    """ops/s of ours, nostr-sdk's and the coincurve limit, per operation."""
    rate = bench.ops_per_second
    limits = _limits(rate, "secp", "ecdh (unhashed x)")
    return {
        op: {"ours": rate(f"{op} ours"), "nostr_sdk": rate(f"{op} nostr-sdk"), "limit": limits[op]} for op in limits
    }


def breakdown(data: dict, rounds: int) -> str:
    """Cost of each step of a v1 unwrap, each step timed over all prepared wraps (best round)."""
    node = data["node"]
    wraps = [Event.from_json(raw) for raw in data["v1_reputation"]]
    seals = [giftwrap._open_seal(wrap, node) for wrap in wraps]
    seal_keys = [nip44.cached_conversation_key(node.secret, bytes.fromhex(seal.pubkey)) for seal in seals]
    rumor_jsons = [nip44.decrypt(seal.content, key) for seal, key in zip(seals, seal_keys, strict=True)]
    rumors = [giftwrap.parse_rumor(text) for text in rumor_jsons]
    contents = [transport.decode_content(rumor.content, 2) for rumor in rumors]
    wrap_keys = [nip44.get_conversation_key(node.secret, bytes.fromhex(wrap.pubkey)) for wrap in wraps]
    steps: list[tuple[str, Sequence[object], Callable[[object], object]]] = [
        ("wrap JSON parse + id check", data["v1_reputation"], Event.from_json),
        ("wrap signature (new key: parse + verify)", wraps, lambda w: w.verify_signature()),
        (
            "wrap ECDH (ephemeral key, uncachable)",
            wraps,
            lambda w: nip44.get_conversation_key(node.secret, bytes.fromhex(w.pubkey)),
        ),
        ("wrap NIP-44 decrypt", list(zip(wraps, wrap_keys, strict=True)), lambda p: nip44.decrypt(p[0].content, p[1])),
        (
            "seal JSON parse + id check",
            [nip44.decrypt(w.content, k) for w, k in zip(wraps, wrap_keys, strict=True)],
            Event.from_json,
        ),
        ("seal signature", seals, lambda seal: seal.verify_signature()),
        (
            "seal conversation key (cached)",
            seals,
            lambda seal: nip44.cached_conversation_key(node.secret, bytes.fromhex(seal.pubkey)),
        ),
        ("seal NIP-44 decrypt", list(zip(seals, seal_keys, strict=True)), lambda p: nip44.decrypt(p[0].content, p[1])),
        ("rumor JSON parse", rumor_jsons, giftwrap.parse_rumor),
        (
            "content: strict message parse + canonical JSON",
            [r.content for r in rumors],
            lambda text: transport.decode_content(text, 2),
        ),
        (
            "trade signature",
            list(zip(contents, rumors, strict=True)),
            lambda p: transport.verify_trade_signature(p[0], bytes.fromhex(p[1].pubkey)),
        ),
        (
            "whole open_inbound",
            data["v1_reputation"],
            lambda raw: open_inbound(raw, node, transport_version=1, now=data["now"]),
        ),
    ]
    # Steps that meet the ephemeral key first parse it as new every round, as in production.
    new_key_steps = {"wrap signature (new key: parse + verify)", "whole open_inbound"}
    bench = Bench()
    for name, items, func in steps:
        bench.add(name, items, func, _FORGET_PARSED_KEYS if name in new_key_steps else lambda: None)
    bench.run(rounds)
    lines = ["| v1 unwrap step (reputation mode) | µs per message |", "|---|---:|"]
    total = 0.0
    for name, _, _ in steps:
        micros = 1e6 / bench.ops_per_second(name)
        if name.startswith("whole"):
            lines.append(f"| sum of the steps | {total:.1f} |")
        total += micros
        lines.append(f"| {name} | {micros:.1f} |")
    return "\n".join(lines)


PIPELINE_STEPS = (
    "wrap JSON parse + id check",
    "wrap signature",
    "wrap ECDH",
    "wrap NIP-44 decrypt",
    "seal JSON parse + id check",
    "seal signature",
    "seal conversation key (cached) + NIP-44 decrypt",
    "rumor JSON parse",
    "content: strict message parse + canonical JSON",
    "trade signature",
)


def pipeline(data: dict, rounds: int) -> str:
    """The steps of a v1 unwrap timed inside the real sequence, caches shared as in `open_inbound`.

    Wall clock (`perf_counter_ns`) around each step; for each message and step the best of
    `rounds` rounds is kept, which drops preemptions by other processes (they rarely hit the
    same step of the same message every round). The parsed-key cache is cleared each round.
    """
    node, clock = data["node"], time.perf_counter_ns

    def run(raw: str) -> list[int]:
        marks = [clock()]
        event = inbound.parse_event(raw)
        marks.append(clock())
        inbound.check_signature(event)
        marks.append(clock())
        wrap_key = nip44.get_conversation_key(node.secret, bytes.fromhex(event.pubkey))
        marks.append(clock())
        seal_json = nip44.decrypt(event.content, wrap_key)
        marks.append(clock())
        seal = Event.from_json(seal_json)
        marks.append(clock())
        if not seal.verify_signature():
            raise ValueError("seal signature")
        marks.append(clock())
        rumor_json = nip44.decrypt(seal.content, nip44.cached_conversation_key(node.secret, bytes.fromhex(seal.pubkey)))
        marks.append(clock())
        rumor = giftwrap.parse_rumor(rumor_json)
        marks.append(clock())
        content = transport.decode_content(rumor.content, 2)
        marks.append(clock())
        transport.verify_trade_signature(content, bytes.fromhex(rumor.pubkey))
        marks.append(clock())
        return [end - start for start, end in zip(marks, marks[1:], strict=False)]

    best: list[list[int]] | None = None
    for _ in range(rounds):
        _FORGET_PARSED_KEYS()
        gc.collect()
        timings = [run(raw) for raw in data["v1_reputation"]]
        best = timings if best is None else [list(map(min, a, b)) for a, b in zip(best, timings, strict=True)]
    assert best is not None
    count = len(best)
    lines = ["| v1 unwrap step, inside the pipeline (reputation mode) | µs per message |", "|---|---:|"]
    for index, name in enumerate(PIPELINE_STEPS):
        lines.append(f"| {name} | {sum(row[index] for row in best) / count / 1000:.1f} |")
    lines.append(f"| sum | {sum(map(sum, best)) / count / 1000:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="prepared events per workload")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the best is kept")
    parser.add_argument("--breakdown", action="store_true", help="also time each step of a v1 unwrap")
    parser.add_argument("--pipeline", action="store_true", help="also time each v1 step inside the pipeline")
    parser.add_argument("--json", help="also write the headline figures to this file (make bench's summary)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    data = prepare(args.events)
    bench = Bench()
    add_ours(bench, data)
    add_sdk(bench, data)
    add_secp(bench, args.events)
    bench.run(args.rounds)
    print(f"{args.events} events per workload, best of {args.rounds} interleaved rounds, one CPU\n")
    print(report(bench))
    if args.json:
        Path(args.json).write_text(json.dumps(figures(bench), indent=2))
    if args.breakdown:
        print()
        print(breakdown(data, args.rounds))
    if args.pipeline:
        print()
        print(pipeline(data, args.rounds))


if __name__ == "__main__":
    main()
