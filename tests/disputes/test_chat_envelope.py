"""The dispute-chat envelopes (docs/PROTOCOL.md §Chat): the book's vector, both designs, nostr-sdk
interop both ways, and every check of the receive path refusing what it must."""

import json
import time

import nostr_sdk as sdk
import pytest

from disputes.chat import envelope
from disputes.chat.envelope import GIFTWRAP, KIND14, ChatRejected, chat_keys, unwrap, wrap
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import sign_event
from tests.browser.chat_party import ecdh_x, hkdf_key

ALICE = Keys.from_hex("548f68890c49fa42f104c60352395e60ff030b0b407e955f1eed1400d6c0347a")
BOB = Keys.from_hex("f258e73f07386d37133718b6127f873dd7c391b8f43b331ff8254034a13d2943")
NOW = 1_800_000_000


def test_book_vector():
    keys = chat_keys(ALICE, BOB.public_key_hex)
    assert keys.shared.hex() == "def6633a53d07d1e829484c4d4bdbbeed2f4b14c21743e63871c174338e39475"
    assert keys.conv.public_key_hex == "bceb1cd2a8e98ee9729122a1693edcc39c3ace04582ff96a26705c5e4078a6f2"
    assert keys.sign.public_key_hex == "1dba04571059183f76b148119cfa6f8004dad30cb4e810180a6df17386a7f0b4"
    other = chat_keys(BOB, ALICE.public_key_hex)
    assert (other.conv.public_key_hex, other.sign.public_key_hex) == (
        keys.conv.public_key_hex,
        keys.sign.public_key_hex,
    )


def test_derivation_matches_cryptography_hkdf():
    solver, party = Keys.generate(), Keys.generate()
    keys = chat_keys(solver, party.public_key_hex)
    shared = ecdh_x(party.secret_hex, solver.public_key_hex)
    assert shared == keys.shared
    assert hkdf_key(shared, b"mostro:chat:conv:v1").public_key().to_hex() == keys.conv.public_key_hex
    assert hkdf_key(shared, b"mostro:chat:sign:v1").public_key().to_hex() == keys.sign.public_key_hex


@pytest.mark.parametrize("design", [KIND14, GIFTWRAP])
def test_round_trip(design):
    solver, party = Keys.generate(), Keys.generate()
    outer, inner = wrap(solver, chat_keys(solver, party.public_key_hex), "¿Pagaste? 🙂", envelope=design, now=NOW)
    message = unwrap(
        outer.to_dict(), chat_keys(party, solver.public_key_hex), frozenset({solver.public_key_hex}), now=NOW
    )
    assert (message.envelope, message.sender, message.content) == (design, solver.public_key_hex, "¿Pagaste? 🙂")
    assert (message.inner_id, message.outer_id, message.created_at) == (inner.id, outer.id, NOW)
    if design == KIND14:
        keys = chat_keys(solver, party.public_key_hex)
        assert (outer.kind, outer.pubkey, outer.created_at) == (14, keys.sign.public_key_hex, NOW)
        assert outer.tags == [["p", keys.conv.public_key_hex]]
    else:
        assert outer.kind == 1059
        assert NOW - envelope.GIFT_WRAP_BACKDATE_S < outer.created_at <= NOW
        assert outer.tags == [["p", chat_keys(solver, party.public_key_hex).legacy.public_key_hex]]
    assert [tag[0] for tag in inner.tags] == ["u"]


def test_nostr_sdk_reads_what_we_send_and_we_read_what_it_sends():
    solver, party = Keys.generate(), sdk.Keys.generate()
    party_hex = party.public_key().to_hex()
    keys = chat_keys(solver, party_hex)
    # ours → nostr-sdk (the party's client: ECDH + HKDF of its own, nostr-sdk's NIP-44)
    outer, _ = wrap(solver, keys, "hello from the console")
    conv = hkdf_key(ecdh_x(party.secret_key().to_hex(), solver.public_key_hex), b"mostro:chat:conv:v1")
    event = sdk.Event.from_json(outer.to_json())
    assert event.verify()
    inner = sdk.Event.from_json(sdk.nip44_decrypt(conv.secret_key(), conv.public_key(), event.content()))
    assert (inner.verify(), inner.content(), inner.author().to_hex()) == (
        True,
        "hello from the console",
        solver.public_key_hex,
    )
    # nostr-sdk → ours
    now = sdk.Timestamp.from_secs(int(time.time()))
    sdk_inner = sdk.EventBuilder(sdk.Kind(1), "hello solver").custom_created_at(now).finalize(party)
    sign = hkdf_key(ecdh_x(party.secret_key().to_hex(), solver.public_key_hex), b"mostro:chat:sign:v1")
    content = sdk.nip44_encrypt(conv.secret_key(), conv.public_key(), sdk_inner.as_json(), sdk.Nip44Version.V2)
    p_tag = sdk.Tag.parse(["p", conv.public_key().to_hex()])
    sdk_outer = sdk.EventBuilder(sdk.Kind(14), content).tags([p_tag]).custom_created_at(now).finalize(sign)
    message = unwrap(json.loads(sdk_outer.as_json()), keys, frozenset({party_hex, solver.public_key_hex}))
    assert (message.content, message.sender) == ("hello solver", party_hex)


def _kind14(**change):
    """A valid kind-14 event from the party, rebuilt with one thing changed."""
    solver, party = Keys.generate(), Keys.generate()
    keys = chat_keys(party, solver.public_key_hex)
    inner_keys = change.pop("inner_signer", party)
    inner = sign_event(
        inner_keys, kind=change.pop("inner_kind", 1), content="hi", tags=[], created_at=change.pop("inner_at", NOW)
    )
    content = envelope.nip44.encrypt(
        inner.to_json(), envelope.nip44.get_conversation_key(keys.conv.secret, keys.conv.public_key)
    )
    tags = change.pop("tags", [["p", keys.conv.public_key_hex]])
    signer = change.pop("outer_signer", keys.sign)
    outer = sign_event(
        signer, kind=14, content=change.pop("content", content), tags=tags, created_at=change.pop("at", NOW)
    )
    raw = outer.to_dict() | change
    return raw, chat_keys(solver, party.public_key_hex), frozenset({party.public_key_hex, solver.public_key_hex})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"outer_signer": Keys.generate()}, "signing key"),
        ({"tags": []}, "exactly one p tag"),
        ({"tags": [["p", "00" * 32]]}, "exactly one p tag"),
        ({"at": NOW + 61, "inner_at": NOW + 61}, "future"),
        ({"content": "A" * (64 * 1024 + 4)}, "too large"),
        ({"sig": "00" * 64}, "bad outer signature"),
        ({"content": "AgAA"}, "cannot decrypt"),
        ({"inner_signer": Keys.generate()}, "not a party"),
        ({"inner_kind": 4}, "not kind 1"),
        ({"inner_at": NOW - 61}, "stale re-wrap"),
        ({"kind": 4}, "not a chat envelope"),
    ],
)
def test_refusals(change, reason):
    raw, keys, allowed = _kind14(**change)
    with pytest.raises(ChatRejected, match=reason):
        unwrap(raw, keys, allowed, now=NOW)


def test_the_legacy_envelope_refuses_another_conversation_and_foreign_signers():
    solver, party, stranger = Keys.generate(), Keys.generate(), Keys.generate()
    outer, _ = wrap(stranger, chat_keys(stranger, party.public_key_hex), "not yours", envelope=GIFTWRAP)
    with pytest.raises(ChatRejected, match="pub\\(S\\)"):
        unwrap(outer.to_dict(), chat_keys(solver, party.public_key_hex), frozenset({party.public_key_hex}))
    outer, _ = wrap(stranger, chat_keys(party, solver.public_key_hex), "wrong signer", envelope=GIFTWRAP)
    with pytest.raises(ChatRejected, match="not a party"):
        unwrap(outer.to_dict(), chat_keys(solver, party.public_key_hex), frozenset({party.public_key_hex}))
