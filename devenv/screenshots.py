"""``python -m devenv.screenshots``: the UI pictures of the docs, taken from ``make ui``'s Airflow.

Starts Airflow's components on the embedded default's home (``var/airflow``, as ``make ui`` does; run
``make demo`` first so that there are runs and asset events), logs in with Debian's Chromium driven by
Playwright, and writes:

- ``docs/img/asset-graph.png``: the asset graph of ``movielens.gold.recommendations`` (the chain from the
  routed files through ``movielens_daily`` to the gold products).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devenv import local_airflow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ASSET = "movielens.gold.recommendations"


def asset_graph(stack: local_airflow.AirflowStack, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    assets = stack.request("GET", "/api/v2/assets?limit=100")["assets"]
    asset_id = next(a["id"] for a in assets if a["name"] == ASSET)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(f"{stack.base_url}/assets/{asset_id}")
        page.wait_for_url("**/auth/login**")
        page.get_by_label("Username").fill(stack.user)
        page.get_by_label("Password").fill(stack.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"**/assets/{asset_id}")
        page.get_by_text(ASSET).first.wait_for()
        page.locator(".react-flow__node").first.wait_for(timeout=60_000)
        page.wait_for_timeout(3_000)  # the graph's layout settles
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "asset-graph.png")
    args = parser.parse_args(argv)
    stack = local_airflow.AirflowStack(local_airflow.airflow_env(), what="the screenshots")
    try:
        stack.start()
        asset_graph(stack, args.out)
    finally:
        stack.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
