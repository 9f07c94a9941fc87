"""Dispute chat between a solver and each party (docs/PROTOCOL.md §Chat), inside the solver console.

`envelope` is the wire format (pure, no Django); `atrest` seals what the console stores;
`keys`, `services` and `inbound` are the console's side; `bridge` is what the relay bridge
calls to subscribe to the conversations and hand their events over.
"""
