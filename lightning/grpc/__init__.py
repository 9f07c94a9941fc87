"""Generated LND gRPC stubs (scripts/gen_lnd_stubs.sh); do not edit by hand."""
