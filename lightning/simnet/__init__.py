"""A simulated Lightning network serving LND's real gRPC API on loopback.

Start it with `manage.py simnet --dir DIR --nodes mostro,alice,bob`. One process serves,
for each node, `lnrpc.Lightning`, `invoicesrpc.Invoices` and `routerrpc.Router` on its own
127.0.0.1 port with a self-signed TLS certificate and a macaroon, written Polar-style to
`DIR/<node>/tls.cert` and `DIR/<node>/admin.macaroon`. `DIR/simnet.json` maps each node to
`{"grpc", "tls_cert", "macaroon", "pubkey"}` and `_control` to `{"url"}`. A line starting
with `READY` is printed once everything serves. `LndClient` connects unchanged.

State (lightning/simnet/persistence.py): the network (ports, height, fees, balances, invoices
with their HTLCs and preimages, payments and their status) is saved to `DIR/simnet-state.json`
when it changed, at most every `--state-interval` seconds (0.25; 0 = memory only), atomically,
and at a clean stop (SIGTERM/SIGINT). Started again with the same `--dir` and `--nodes`, simnet
resumes it on the same ports with the same certificate and macaroon files, as a restarted LND
does from its database: an HTLC accepted on a hold invoice is still held and the payer's
payment still IN_FLIGHT until the invoice is settled or canceled (the payer's own streams ended
with the old process: `TrackPaymentV2` follows it again); a payment held by
`stick_next_payment` is still held. After a SIGKILL the changes of the last interval may be
lost, never half of one. A state whose sats do not add up (balances + HTLC-locked amounts +
routing fees ≠ the supply) or whose held HTLCs have no matching in-flight payment is refused.
Fault injection (offline, delay, fail-next) is not saved: a new process starts healthy.

Semantics (LND 0.20):
- real signed BOLT11 (`lnbcrt`, the node's own secp256k1 key, deterministic per name),
  payment secret, expiry (default 86400 s) and min final CLTV (default 80, minimum 18);
- hold invoices: OPEN → ACCEPTED when another node pays (the payer's SendPaymentV2 stays
  IN_FLIGHT) → SETTLED with the right preimage (the payment SUCCEEDS with it) or CANCELED
  (the payment FAILS with FAILURE_REASON_INCORRECT_PAYMENT_DETAILS); settle before accept
  answers "invoice still open"; cancel is idempotent, "invoice already settled" after settle;
- block clock (`--block-interval`, 0 = mine on demand); an HTLC expires at accept height +
  CLTV + 3 (LND's block padding) and an accepted hold invoice is canceled when
  height + 12 ≥ that expiry (LND's hold-invoice expiry delta); OPEN invoices are canceled
  when their expiry passes;
- payments move balances (route fee = base + ppm, `--fee-base-msat`/`--fee-ppm`); a fee
  above the limit gives FAILURE_REASON_NO_ROUTE, a short balance
  FAILURE_REASON_INSUFFICIENT_BALANCE, a non-OPEN invoice
  FAILURE_REASON_INCORRECT_PAYMENT_DETAILS; refusals before a payment starts are gRPC
  errors with LND's strings ("invoice is already paid" / "payment is in transition" as
  ALREADY_EXISTS, "invoice expired. Valid until …", "amount must be specified when paying
  a zero amount invoice", "invoice not for current active network 'regtest'");
- SubscribeSingleInvoice and TrackPaymentV2 send the current state, then every change;
  TrackPaymentV2 of an unknown hash is NOT_FOUND "payment isn't initiated"; lookups of an
  unknown hash answer "unable to locate invoice";
- a missing macaroon answers "expected 1 macaroon, got 0", a wrong one "verification
  failed: signature mismatch after caveat verification" (status UNKNOWN, as LND).

Fault injection, via the control endpoint (`POST <control url>/<action>` with a JSON body;
`lightning.simnet.control.SimnetControl` wraps it):
- `offline {"node"}` / `online {"node"}`: every call to the node fails with UNAVAILABLE;
  payments to it fail with FAILURE_REASON_NO_ROUTE;
- `restart {"node", "down_seconds"}`: every open stream of the node ends with
  UNAVAILABLE (state survives, as LND's database does), optionally offline for a while;
- `delay {"node", "seconds", "methods": [names], "after_effect": bool}`: slow LND — the node's
  unary calls (all, or the named ones, e.g. "SettleInvoice") answer `seconds` late; beyond the
  client's deadline they hang until it. `after_effect`: the call takes effect at once and only
  the answer is late (lost to the deadline); else it takes effect after the wait, or never if
  the client gave up. `seconds` 0 ends it;
- `fail_next_payment {"node", "reason": "FAILURE_REASON_*"}`: the node's next payment fails;
- `stick_next_payment {"node"}`: the node's next payment stays IN_FLIGHT until
  `resolve_payment {"node", "payment_hash", "outcome": "deliver"|"fail", "reason"}`;
- `mine {"blocks"}`, `fees {"base_msat", "ppm"}`, `balance {"node", "balance_sats"}`,
  `state {}`.
"""
