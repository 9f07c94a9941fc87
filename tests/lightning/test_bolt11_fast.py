"""`lightning.bolt11_fast.decode_common`: the common invoice shape read from bech32's words gives
the `bolt11` package's values, and everything else (other shapes, every refusal) is left to the
package. Invoices are built word by word, so any field, length, order or damage can be made."""

import hashlib
import random

import coincurve
import pytest

from lightning.bolt11 import InvoiceInvalid, _decode_cached, _decode_package, bech32_decode
from lightning.bolt11_fast import _uint, decode_common
from nostrbridge.protocol.bech32 import CHARSET, bech32_encode_words, from_words, to_words

KEY = coincurve.PrivateKey(b"\x09" * 32)
NOW = 1_800_000_000


def _int_words(value: int) -> list[int]:
    out = []
    while value:
        out.append(value & 31)
        value >>= 5
    return out[::-1]


def _field(char: str, words: list[int]) -> list[int]:
    return [CHARSET.index(char), len(words) >> 5, len(words) & 31, *words]


def _invoice(fields: list[tuple[str, list[int]]], *, hrp="lnbcrt25u", timestamp=NOW, key=KEY, recid=None) -> str:
    words = [(timestamp >> (5 * i)) & 31 for i in range(6, -1, -1)]
    for char, data in fields:
        words += _field(char, data)
    signed = hrp.encode() + from_words(words, pad=True)
    signature = bytearray(key.sign_recoverable(signed, hasher=lambda m: hashlib.sha256(m).digest()))
    if recid is not None:
        signature[64] = recid
    return bech32_encode_words(hrp, words + to_words(bytes(signature)))


def _hash(byte: int) -> list[int]:
    return to_words(bytes([byte]) * 32)


def _text(text: str) -> list[int]:
    return to_words(text.encode())


LND_SHAPE = [
    ("p", _hash(0xAB)),
    ("s", _hash(0xCD)),
    ("d", _text("mostro payout")),
    ("x", _int_words(86_400)),
    ("c", _int_words(80)),
    ("9", _int_words((1 << 8) | (1 << 14) | (1 << 17))),
]


def _outcome(decode, invoice: str):
    try:
        return ("decoded", decode(invoice))
    except InvoiceInvalid as refused:
        return ("refused", refused.code)


def _both(invoice: str):
    """(fast path taken?, the outcome through `_decode_cached`, the package's outcome)."""
    hrp, words = bech32_decode(invoice)
    fast = hrp is not None and decode_common(invoice, hrp, words, CHARSET) is not None
    return fast, _outcome(_decode_cached.__wrapped__, invoice), _outcome(_decode_package, invoice)


def test_an_lnd_shaped_invoice_takes_the_fast_path_with_exact_values():
    invoice = _invoice(LND_SHAPE)
    hrp, words = bech32_decode(invoice)
    decoded = decode_common(invoice, hrp, words, CHARSET)
    assert decoded is not None
    assert (decoded.payment_hash_hex, decoded.payment_secret_hex) == ("ab" * 32, "cd" * 32)
    assert (decoded.amount_msat, decoded.amount_sats, decoded.currency, decoded.network) == (
        2_500_000,
        2_500,
        "bcrt",
        "regtest",
    )
    assert (decoded.timestamp, decoded.expiry_seconds, decoded.expires_at) == (NOW, 86_400, NOW + 86_400)
    assert (decoded.min_final_cltv_expiry, decoded.description, decoded.description_hash_hex) == (
        80,
        "mostro payout",
        "",
    )
    assert decoded.payee_pubkey_hex == KEY.public_key.format(compressed=True).hex()
    assert decoded == _decode_package(invoice)


@pytest.mark.parametrize(
    ("fields", "hrp", "fast"),
    [
        (LND_SHAPE, "lnbcrt25u", True),
        (LND_SHAPE, "lnbc1p", True),  # 0.1 msat: the package's amount, truncated to 0
        (LND_SHAPE, "lntbs", True),  # no amount, signet
        ([("p", _hash(1)), ("s", _hash(2)), ("h", _hash(3))], "lnbc10n", True),  # defaults: 3600 s, cltv 18
        ([("p", _hash(1)), ("p", _hash(4)), ("s", _hash(2)), ("d", _text("a")), ("h", _hash(3))], "lnbc", True),
        ([("p", _hash(1)[:51]), ("p", _hash(4)), ("s", _hash(2)), ("d", _text("wrong-length first"))], "lnbc", True),
        ([("q", [1, 2, 3]), ("p", _hash(1)), ("s", _hash(2)), ("d", _text("unknown field")), ("q", [])], "lnbc", True),
        ([("p", _hash(1)), ("s", _hash(2)), ("d", _text("twice")), ("x", [1]), ("x", [2]), ("c", [3])], "lnbc", True),
        ([("p", _hash(1)), ("s", _hash(2)), ("d", _text("é ✓ multibyte"))], "lnbc", True),
        ([("p", _hash(1)), ("s", _hash(2)), ("d", [])], "lnbc", True),  # LND's invoice without a memo
        ([("p", _hash(1)), ("s", _hash(2)), ("d", []), ("h", _hash(3))], "lnbc", True),  # the empty one counts
        ([("p", _hash(1)), ("s", _hash(2)), ("d", _text("x")), ("x", [])], "lnbc", False),  # refused there
        ([("p", _hash(1)), ("s", _hash(2)), ("d", _text("x")), ("c", [])], "lnbc", False),
        ([("p", _hash(1)), ("s", _hash(2)), ("d", [0x1F] * 8)], "lnbc", False),  # not UTF-8
        ([("p", _hash(1)), ("d", _text("no secret"))], "lnbc", False),
        ([("s", _hash(2)), ("d", _text("no hash"))], "lnbc", False),
        ([("p", _hash(1)), ("s", _hash(2))], "lnbc", False),  # no description
        (
            [("p", _hash(1)), ("s", _hash(2)), ("d", _text("x")), ("n", to_words(KEY.public_key.format()))],
            "lnbc",
            False,
        ),
        ([("p", _hash(1)), ("s", _hash(2)), ("d", _text("x")), ("r", [1] * 82)], "lnbc", False),
        ([("p", _hash(1)), ("s", _hash(2)), ("d", _text("x")), ("f", [0] + [3] * 32)], "lnbc", False),
        ([("p", _hash(1)), ("s", _hash(2)), ("d", _text("x")), ("m", _text("meta"))], "lnbc", False),
        (LND_SHAPE, "lnxx", False),  # an unknown currency
        (LND_SHAPE, "lnbc2500x", False),  # a bad multiplier
    ],
)
def test_each_shape_decodes_as_the_package_decodes_it(fields, hrp, fast):
    taken, through_cache, package = _both(_invoice(fields, hrp=hrp))
    assert (taken, through_cache) == (fast, package)


def test_an_invoice_of_the_simnet_without_a_memo_takes_the_fast_path():
    """The benchmark's and the e2e tests' buyer invoices (`encode_invoice`, no description)."""
    from lightning.bolt11_encode import InvoiceTerms, encode_invoice

    invoice = encode_invoice(InvoiceTerms(payment_hash=b"\x01" * 32, payment_secret=b"\x02" * 32, timestamp=NOW), KEY)
    hrp, words = bech32_decode(invoice)
    decoded = decode_common(invoice, hrp, words, CHARSET)
    assert decoded is not None
    assert (decoded.description, decoded.description_hash_hex, decoded.payment_hash_hex) == ("", "", "01" * 32)
    assert decoded == _decode_package(invoice)


@pytest.mark.parametrize("recid", [2, 3, 4, 200])
def test_a_bad_recovery_id_is_the_packages_answer(recid):
    taken, through_cache, package = _both(_invoice(LND_SHAPE, recid=recid))
    assert through_cache == package
    if recid > 3:
        assert (taken, package[0]) == (False, "refused")


def test_a_field_running_past_the_data_is_the_packages_refusal():
    invoice = _invoice(LND_SHAPE)
    hrp, words = bech32_decode(invoice)
    words[7 + 2] = 31  # the first field's length, now beyond the end
    damaged = bech32_encode_words(hrp, words + [0] * 0)
    hrp, words = bech32_decode(damaged)
    assert decode_common(damaged, hrp, words, CHARSET) is None
    assert _outcome(_decode_cached.__wrapped__, damaged) == _outcome(_decode_package, damaged)


@pytest.mark.parametrize("seed", range(300))
def test_random_fields_and_damage_decode_as_the_package(seed):
    rng = random.Random(seed)
    pool = [
        ("p", _hash(rng.randrange(256))),
        ("s", _hash(rng.randrange(256))),
        ("d", _text("trade " + str(rng.randrange(10**6))) if rng.random() < 0.8 else []),
        ("h", _hash(rng.randrange(256))),
        ("x", _int_words(rng.randrange(1, 10**7))),
        ("c", _int_words(rng.randrange(1, 2000))),
        ("9", _int_words(rng.getrandbits(rng.randrange(1, 120)))),
        (rng.choice("qzy8g2tvw03j5kea67l"), [rng.randrange(32) for _ in range(rng.randrange(0, 40))]),
        ("p", [rng.randrange(32) for _ in range(rng.choice([0, 51, 53]))]),
    ]
    fields = [field for field in pool if rng.random() < 0.8]
    rng.shuffle(fields)
    hrp = rng.choice(["lnbc", "lnbc2500u", "lntb1m", "lnbcrt500n", "lntbs30p", "lnbc1"])
    invoice = _invoice(fields, hrp=hrp, timestamp=rng.randrange(2**35))
    if rng.random() < 0.5:  # a changed word, the checksum made valid again: the signature no longer matches
        words = bech32_decode(invoice)[1]
        position = rng.randrange(len(words))
        words[position] = (words[position] + rng.randrange(1, 32)) % 32
        invoice = bech32_encode_words(hrp, words)
    _, through_cache, package = _both(invoice)
    assert through_cache == package


def test_the_random_invoices_mostly_take_the_fast_path():
    """The comparison above is not only between two package decodes."""
    taken = sum(_both(_invoice(LND_SHAPE, timestamp=NOW + i))[0] for i in range(20))
    assert taken == 20


def test_the_words_integer_is_the_shift_loops_at_every_length():
    def shifted(words: list[int]) -> int:
        value = 0
        for word in words:
            value = (value << 5) | word
        return value

    rng = random.Random(20)
    for length in range(0, 700):
        words = [rng.randrange(32) for _ in range(length)]
        assert _uint(words) == shifted(words), length
    assert _uint([31] * 104) == (1 << 520) - 1
    assert _uint([0] * 40 + [1]) == 1
