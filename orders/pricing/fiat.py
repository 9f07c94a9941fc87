"""The fiat allowlist applied to every provider's quotes before aggregation.

Providers return more than fiat: Yadio quotes BTC itself and metals (XAU, XAG, XPT), and
currency-api ships hundreds of entries, many of them three-letter crypto codes (ADA, BNB,
DOT, ...). A deny-list could never keep up with those, so the filter is a positive list:
the active ISO 4217 codes plus the non-ISO units Mostro users trade (IRT toman, the GGP/IMP/JEP
pounds, the Cuban MLC). It is Mostro's list (src/price/fiat.rs). VEF is left out on purpose:
the pre-redenomination bolívar is a different unit from VES, and a wrong unit is worse than
no price.
"""

KNOWN_FIAT_CODES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GGP GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS IMP INR IQD IRR IRT ISK
    JEP JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
    MKD MLC MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
    PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC
    SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD
    XCG XOF XPF YER ZAR ZMW ZWL
    """.split()
)


def is_fiat_code(code: str) -> bool:
    """True for an upper-case code on the allowlist; callers upper-case provider codes first."""
    return code in KNOWN_FIAT_CODES
