"""The wire test vectors of this directory (see its README.md), read once from the repository."""

import functools
import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parent


@functools.cache
def load_vectors(name: str) -> Any:
    """`mostro.vectors.json` or `nip44.vectors.json`, parsed."""
    return json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))


def mostro_vectors() -> dict[str, Any]:
    return load_vectors("mostro.vectors.json")
