"""The anti-abuse bond (docs/PROTOCOL.md §Bonds): a second hold invoice per bonded party."""
