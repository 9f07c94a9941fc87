"""`lightning.bolt11.u5_to_bitarray` and `lightning.bolt11.bech32_decode`, the fast shims
`bolt11.decode` now uses: the same bits and the same (hrp, data) or refusal as the packages' own
on every input, hence the same decoded invoices and the same refusals."""

import importlib
import importlib.util
import random

import bech32
import bolt11
import coincurve
import pytest
from bitstring import BitArray, ConstBitStream
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags
from bolt11.bit_utils import u5_to_bitarray as package_shim
from bolt11.models.fallback import Fallback
from bolt11.models.features import Features
from bolt11.models.routehint import RouteHint

from lightning.bolt11 import (
    BAD_SIGNATURE,
    UNDECODABLE,
    InvoiceInvalid,
    PackageFeatures,
    _decode_cached,
    bech32_decode,
    pull_tagged,
    u5_to_bitarray,
)

DECODE_MODULE = importlib.import_module("bolt11.decode")
KEY = coincurve.PrivateKey(b"\x07" * 32)


def test_bolt11_decode_uses_the_fast_shims():
    assert DECODE_MODULE.u5_to_bitarray is u5_to_bitarray
    assert DECODE_MODULE.bech32_decode is bech32_decode


def _package_shims(monkeypatch) -> None:
    monkeypatch.setattr(DECODE_MODULE, "u5_to_bitarray", package_shim)
    monkeypatch.setattr(DECODE_MODULE, "bech32_decode", bech32.bech32_decode)


@pytest.mark.parametrize("length", [0, 1, 2, 7, 8, 64, 65, 104, 333, 1024, 2047])
def test_same_bits_as_the_package_shim(length):
    rng = random.Random(length)
    for values in ([rng.randrange(32) for _ in range(length)], [0] * length, [31] * length):
        fast, slow = u5_to_bitarray(values), package_shim(values)
        assert isinstance(fast, BitArray)
        assert (fast.len, fast.bin) == (slow.len, slow.bin)


@pytest.mark.parametrize("value", [32, -1, 1 << 40])
def test_a_value_beyond_five_bits_is_refused_as_by_the_package(value):
    with pytest.raises(ValueError):
        u5_to_bitarray([1, value])
    with pytest.raises(ValueError):  # bitstring's CreationError is a ValueError
        package_shim([1, value])


def _invoice(*, amount_msat=None, extra=()) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, "ab" * 32)
    tags.add(TagChar.payment_secret, "cd" * 32)
    tags.add(TagChar.description, "fast shim ✓")
    tags.add(TagChar.expire_time, 7200)
    tags.add(TagChar.min_final_cltv_expiry, 144)
    for tag, value in extra:
        tags.add(tag, value)
    invoice = Bolt11(currency="bc", date=1_800_000_000, tags=tags, amount_msat=amount_msat)
    return bolt11.encode(invoice, KEY.secret.hex())


HINT = RouteHint.from_list(
    [
        {
            "public_key": "02" + "11" * 32,
            "short_channel_id": "800000x1x0",
            "base_fee": 1000,
            "ppm_fee": 10,
            "cltv_expiry_delta": 40,
        }
    ]
)
INVOICES = [
    _invoice(),
    _invoice(amount_msat=MilliSatoshi(2_500_000_000)),
    _invoice(amount_msat=MilliSatoshi(10), extra=[(TagChar.route_hint, HINT)]),
    _invoice(extra=[(TagChar.fallback, Fallback.from_address("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bc"))]),
]


@pytest.mark.parametrize("invoice", INVOICES)
def test_decoded_invoices_equal_the_package_shims(invoice, monkeypatch):
    fast = bolt11.decode(invoice).data
    _package_shims(monkeypatch)
    assert fast == bolt11.decode(invoice).data
    assert fast["payee"] == KEY.public_key.format().hex()


def _refusal(invoice: str) -> str:
    _decode_cached.cache_clear()
    with pytest.raises(InvoiceInvalid) as refused:
        _decode_cached(invoice)
    return refused.value.code


@pytest.mark.parametrize("damage", ["signature", "field", "truncate"])
def test_damaged_invoices_are_refused_alike(damage, monkeypatch):
    invoice = INVOICES[1]
    if damage == "signature":  # another payee signs the same fields
        other = bolt11.decode(invoice)
        damaged = bolt11.encode(other, coincurve.PrivateKey(b"\x08" * 32).secret.hex(), keep_payee=True)
    elif damage == "field":
        damaged = invoice[:40] + ("q" if invoice[40] != "q" else "p") + invoice[41:]
    else:
        damaged = invoice[:60]
    fast = _refusal(damaged)
    _package_shims(monkeypatch)
    assert fast == _refusal(damaged)
    assert fast in {BAD_SIGNATURE, UNDECODABLE}


def _bech32_inputs() -> list[str]:
    """Valid invoices, then every kind of damage `bech32_decode` checks for."""
    rng = random.Random(173)
    valid = INVOICES[1]
    inputs = [
        *INVOICES,
        valid.upper(),
        "LNBC1" + valid[5:],
        valid[:-1],
        valid[:-6],
        "1" + valid,
        "a1qqqqqq",
        "a1qqqqqqq",
    ]
    inputs += [valid[:10] + " " + valid[11:], valid[:10] + "é" + valid[11:], valid[:10] + "b" + valid[11:], ""]
    inputs += ["x" * 83 + "1" + "q" * 6, "x" * 84 + "1" + "q" * 6, "x1" + "\x7f" * 6, "\x21\x7e1qqqqqq"]
    for _ in range(200):  # one character changed anywhere, to anything printable or not
        position = rng.randrange(len(valid))
        inputs.append(valid[:position] + chr(rng.randrange(20, 130)) + valid[position + 1 :])
    return inputs


def test_bech32_charsets_agree():
    from nostrbridge.protocol.bech32 import CHARSET

    assert CHARSET == bech32.CHARSET


def test_bech32_decode_answers_as_the_package_on_every_input():
    inputs = _bech32_inputs()
    answers = [bech32_decode(text) for text in inputs]
    assert answers == [bech32.bech32_decode(text) for text in inputs]
    assert sum(hrp is not None for hrp, _ in answers) >= len(INVOICES) + 2  # the valid ones and the upper-case one


def _fresh_package_decode_module():
    """A second copy of `bolt11.decode` with none of the shims: the package's own decode."""
    spec = importlib.util.find_spec("bolt11.decode")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return fresh


PACKAGE = _fresh_package_decode_module()


def test_bolt11_decode_uses_the_field_shims():
    assert DECODE_MODULE._pull_tagged is pull_tagged
    assert DECODE_MODULE.Features is PackageFeatures
    assert PACKAGE._pull_tagged is not pull_tagged
    assert PACKAGE.Features is Features


@pytest.mark.parametrize("seed", range(40))
def test_pull_tagged_reads_as_the_package(seed):
    rng = random.Random(seed)
    bits = BitArray(uint=rng.getrandbits(600), length=600)[: rng.choice([3, 14, 15, 16, 40, 200, 600])]
    fast, slow = ConstBitStream(bits), ConstBitStream(bits)
    while True:
        try:
            expected = PACKAGE._pull_tagged(slow)
        except IndexError as refused:
            with pytest.raises(type(refused)):
                pull_tagged(fast)
            break
        char, data, stream = pull_tagged(fast)
        assert (char, data.bin, stream.pos) == (expected[0], expected[1].bin, expected[2].pos)
        if stream.pos == stream.len:
            break


def _feature_view(features) -> tuple:
    return (features.data.bin, [(key.name, key.value, state) for key, state in features.feature_list.items()])


@pytest.mark.parametrize("length", [0, 1, 4, 5, 10, 35, 40, 45, 100, 255])
def test_features_equal_the_packages(length):
    rng = random.Random(length)
    for value in (0, (1 << length) - 1, rng.getrandbits(max(length, 1)) & ((1 << length) - 1), 0b101 << 32):
        data = BitArray(uint=value % (1 << length), length=length) if length else BitArray()
        fast = PackageFeatures.from_bitstring(ConstBitStream(data))
        assert isinstance(fast, Features)
        assert _feature_view(fast) == _feature_view(Features.from_bitstring(ConstBitStream(data)))


def test_lnd_feature_bits_are_read_exactly():
    """LND's invoice features: var_onion_optin and payment_secret required, basic_mpp optional."""
    features = PackageFeatures.from_bitstring(
        ConstBitStream(BitArray(uint=(1 << 8) | (1 << 14) | (1 << 17), length=20))
    )
    assert features.readable == {"var_onion_optin": "required", "payment_secret": "required", "basic_mpp": "supported"}


FEATURE_INVOICES = [
    _invoice(extra=[(TagChar.features, Features.from_bitstring(BitArray(uint=bits, length=length)))])
    for bits, length in [((1 << 8) | (1 << 14) | (1 << 17), 20), ((1 << 99) | (1 << 40) | 3, 100), (0, 5), (1, 5)]
]


@pytest.mark.parametrize("invoice", INVOICES + FEATURE_INVOICES)
def test_decoded_invoices_equal_the_unshimmed_package(invoice):
    fast = bolt11.decode(invoice)
    slow = PACKAGE.decode(invoice)
    assert fast.data == slow.data
    assert (fast.features is None) == (slow.features is None)
    if fast.features is not None:
        assert _feature_view(fast.features) == _feature_view(slow.features)


@pytest.mark.parametrize("seed", range(60))
def test_damaged_invoices_are_refused_as_by_the_unshimmed_package(seed):
    """One character of the data part changed, the checksum made valid again: the fields and
    the signature are what is damaged, as a bit flip the bech32 check cannot see."""
    rng = random.Random(seed)
    invoice = rng.choice(INVOICES + FEATURE_INVOICES)
    hrp, data = bech32.bech32_decode(invoice)
    position = rng.randrange(len(data) - 104)  # a field, not the signature
    data[position] = (data[position] + rng.randrange(1, 32)) % 32
    damaged = bech32.bech32_encode(hrp, data)

    def outcome(decode):
        try:
            return ("ok", decode(damaged).data)
        except Exception as refused:  # noqa: BLE001 - the exception's type is the answer compared
            return ("refused", type(refused))

    assert outcome(bolt11.decode) == outcome(PACKAGE.decode)
