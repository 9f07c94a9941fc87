"""`make screenshots`: a demo node, a trade and a dispute with chat, every page in docs/screens/.

Runs the browser tour of tests/browser/console_scenario.py (the same one the browser test
asserts on): nostr-sdk's LocalRelay, the simulated Lightning network, `manage.py mostrod` on
its own SQLite file in a temporary directory, nostr-sdk traders and chat parties, and Debian's
Chromium through Playwright. Nothing outside 127.0.0.1 is contacted.
"""

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.test")

import django  # noqa: E402

django.setup()

from tests.browser.console_scenario import run_browser, start_tour, stop_tour  # noqa: E402
from tests.browser.test_solver_console import _ensure_browser  # noqa: E402

SCREENS = ROOT / "docs" / "screens"


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mostro-screens-") as workdir:
        tour = await start_tour(Path(workdir) / "node")
        try:
            seen = await run_browser(tour, SCREENS)
        finally:
            await stop_tour(tour)
    names = sorted(path.name for path in SCREENS.glob("*.png"))
    print(f"{len(names)} screenshots in {SCREENS.relative_to(ROOT)}/: {', '.join(names)}")
    if seen.get("external"):
        print(f"WARNING: pages loaded from outside the node: {seen['external']}")


if __name__ == "__main__":
    try:
        _ensure_browser()
    except BaseException as exc:  # noqa: BLE001 - pytest.skip raises an exception type of its own
        sys.exit(f"cannot take screenshots: {exc}")
    asyncio.run(main())
