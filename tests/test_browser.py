"""The HTML a person opens, in a real browser: Debian's headless Chromium driven by Playwright, with every request
outside the files themselves refused (so a page that needs the internet fails here as it would offline).

Checked on each page: no console error, no uncaught exception, no failed request, every image decoded. CI installs
Chromium (``.ci/run``) and sets ``TAOSR1_REQUIRE_BROWSER=1`` so a missing browser fails instead of skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import job, jvm_only

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(not CHROMIUM and os.environ.get("TAOSR1_REQUIRE_BROWSER") != "1",
                                   reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "TAOSR1_REQUIRE_BROWSER=1 but no chromium on PATH"
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path, quiet_ms: int = 500, limit_s: float = 120.0) -> tuple[object, list[str]]:
    """Load a local page with the network closed; return the page and every problem the browser reported.

    Settled means the load event fired and no request of the page's own was in flight for ``quiet_ms`` (Playwright's
    ``networkidle`` is a bare timeout on a loaded machine; this names the request that never finished instead)."""
    import time

    problems: list[str] = []
    pending: dict[object, str] = {}
    page = browser.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
               else route.abort())
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.on("request", lambda r: pending.__setitem__(r, r.url[:120]))
    page.on("requestfinished", lambda r: pending.pop(r, None))

    def failed(r) -> None:
        pending.pop(r, None)
        problems.append(f"request failed: {r.url[:120]}")

    page.on("requestfailed", failed)
    page.goto(path.resolve().as_uri(), wait_until="load", timeout=limit_s * 1000)
    deadline, quiet_since = time.monotonic() + limit_s, time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)  # lets Playwright deliver the page's events
        if pending:
            quiet_since = time.monotonic()
        elif (time.monotonic() - quiet_since) * 1000 >= quiet_ms:
            break
    else:
        problems += [f"request still in flight after {limit_s:g} s: {url}" for url in pending.values()]
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                           ".map(i => (i.src || '').slice(0, 80))")
    problems += [f"image not decoded: {src}" for src in broken]
    return page, problems


@needs_browser
@jvm_only
def test_evaluation_report_and_data_docs_open_cleanly(browser, ingested, builtin_model):
    from taosr1.evaluation.promote import crown
    from taosr1.quality.offline_docs import assets_dir

    crown(ingested, builtin_model, "test champion", "test-crown")
    rep = job(ingested, "evaluate", source="world", train_source="world", max_pairs=40, embeddings=False,
              models={"base": builtin_model}, champion=True)
    page, problems = open_page(browser, Path(rep.info["report"]))
    assert problems == []
    images = page.evaluate("document.images.length")
    assert images >= 4  # per-class F1, a confusion matrix per system, the tier mix
    text = page.inner_text("body")
    assert "NDCG@10" in text and "champion:" in text and "macro-F1" in text
    # the intervals as error bars, rendered (the image decoded with a size); the interval and chance columns
    assert page.evaluate("(() => { const i = document.getElementById('intervals'); "
                         "return !!i && i.complete && i.naturalWidth > 0; })()")
    assert "95% interval" in text and "chance" in text and "Spearman" in text and "QWK" in text
    page.close()

    docs = Path(ingested.root) / "quality" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.exists()
    if assets_dir() is None:
        pytest.fail("the Data Docs' scripts are not installed locally (scripts/setup.sh installs them with npm)")
    page, problems = open_page(browser, docs)
    assert problems == []
    assert page.evaluate("typeof jQuery") == "function" and page.evaluate("typeof vegaEmbed") == "function"
    text = page.inner_text("body")  # the suites and the validation results, rendered by bootstrap-table
    assert "search_log" in text and "Success" in text
    pages = sorted(p for p in docs.parent.rglob("*.html") if p != docs)
    assert any("validations" in p.parts for p in pages) and any("expectations" in p.parts for p in pages)
    for sub_path in pages[:12]:
        sub, problems = open_page(browser, sub_path)
        assert problems == [], sub_path
        assert sub.evaluate("document.querySelectorAll('table, .card').length") > 0, sub_path
        sub.close()
