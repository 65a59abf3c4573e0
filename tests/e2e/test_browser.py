"""Every page in a real browser: it opens, does its main action on the bundled demo, and is screenshot."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import EXPORT_DIR, SHOTS

Page = Any


def _settle(page: Page, timeout: float = 120_000) -> None:
    """Wait until the script run is over (the running indicator is gone) and no exception shows."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def _type(page: Page, label: str, text: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Enter")
    _settle(page)


_CHARTS = '[data-testid="stVegaLiteChart"], [data-testid="stPlotlyChart"]'


def _charts(page: Page, at_least: int = 1) -> int:
    """How many charts are drawn, after waiting (charts mount after the script run ends) for ``at_least``."""
    page.wait_for_function(f"() => document.querySelectorAll('{_CHARTS}').length >= {at_least}", timeout=60_000)
    return int(page.locator(_CHARTS).count())


def _see(page: Page, text: str, timeout: float = 180_000) -> None:
    """Wait until ``text`` shows (a run may take a while on a small machine)."""
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)


def _in_table(page: Page, text: str, timeout: float = 180_000) -> None:
    """Wait until a st.dataframe cell holds ``text``: the grid paints on a canvas and keeps its cells in the
    DOM only for accessibility, hidden, so wait for them to be attached rather than visible."""
    page.locator('[role="gridcell"]', has_text=text).first.wait_for(state="attached", timeout=timeout)


def _click(page: Page, name: str) -> None:
    page.get_by_role("button", name=name).first.click()
    _settle(page)


def _overview(page: Page) -> None:
    assert page.get_by_text("30,522 tokens × 384 dimensions").count() >= 1
    assert _charts(page, 2) >= 2


def _lookup(page: Page) -> None:
    _type(page, "Text", "Hello world")
    assert page.get_by_text("2 piece(s), 384 values each").count() == 1


def _neighbors(page: Page) -> None:
    _type(page, "Query", "king - man + woman")
    _in_table(page, "queen")
    assert _charts(page) >= 1


def _heatmap(page: Page) -> None:
    assert _charts(page) >= 1


def _benchmarks(page: Page) -> None:
    _click(page, "Run analogies")
    _see(page, "accuracy")


def _projection(page: Page) -> None:
    _see(page, "Explained")
    assert _charts(page) >= 1  # PCA runs without a button
    assert page.get_by_text("explained", exact=False).count() >= 1


def _export(page: Page) -> None:
    page.get_by_text("Write on the server").first.click()
    box = page.get_by_label(re.compile(r"^New (file|folder) to write$"))
    box.fill(str(EXPORT_DIR / "minilm-export"))
    box.press("Enter")
    _settle(page)
    _click(page, "Write")
    _see(page, "minilm-export")
    assert (EXPORT_DIR / "minilm-export").exists()


def _health(page: Page) -> None:
    _see(page, "8 pass · 3 warn · 0 fail")
    _see(page, "Under-trained tokens")


def _finetune(page: Page) -> None:
    _click(page, "Start")
    _see(page, "done in")


def _compare(page: Page) -> None:
    # the flow a user follows: fine-tune the demo, then "Compare with the original"
    page.get_by_role("link", name="Fine-tune").first.click()
    _settle(page)
    _click(page, "Start")
    _see(page, "done in")
    _click(page, "Compare with the original")
    _see(page, "Moved most")
    _see(page, "Joint projection")
    assert _charts(page, 2) >= 2


def _gate(page: Page) -> None:
    _click(page, "Check")
    _see(page, "Verdict: WARN")
    _in_table(page, "Under-trained tokens")
    _see(page, "HTML report")


#: url path → (heading, main action).
PAGES: dict[str, tuple[str, Callable[[Page], None]]] = {
    "": ("Overview", _overview),
    "lookup": ("Token lookup", _lookup),
    "neighbors": ("Neighbours & analogies", _neighbors),
    "heatmap": ("Similarity heatmap", _heatmap),
    "benchmarks": ("Benchmarks", _benchmarks),
    "projection": ("Projection", _projection),
    "export": ("Export", _export),
    "health": ("Health", _health),
    "finetune": ("Fine-tune", _finetune),
    "compare": ("Compare", _compare),
    "gate": ("Release check", _gate),
}


@pytest.mark.e2e
@pytest.mark.parametrize("path", list(PAGES))
def test_page_in_browser(server: str, browser: Any, path: str) -> None:
    heading, action = PAGES[path]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/{path}", timeout=120_000)
        _settle(page)
        page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
        action(page)
        page.wait_for_timeout(1000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{path or 'overview'}.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(EXPORT_DIR / f"failed-{path or 'overview'}.png"), full_page=True)
        raise
    finally:
        page.close()


@pytest.mark.e2e
def test_large_vocabulary_in_browser(server: str, browser: Any) -> None:
    """Qwen3's released tokenizer (151,669 entries) beside a seeded 151,936-row matrix: open it from the
    sidebar, then Overview and Token lookup show its rows and the ids of the tokenizers library."""
    from tokenizers import Tokenizer

    from tests import _realfiles

    src = _realfiles.npm_tokenizer("qwen3")
    folder = _realfiles.seeded_model_folder(EXPORT_DIR / "qwen3", 151936,
                                            files=(src / "tokenizer.json", src / "tokenizer_config.json"))
    text = "Hello world naïve café 東京"
    want = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(server, timeout=120_000)
        _settle(page)
        page.get_by_text("Open another matrix").first.click()
        box = page.get_by_label("File or folder", exact=True)
        box.fill(str(folder))
        box.press("Enter")
        _settle(page)
        # the sidebar's "Open" button, not the matrix picker's dropdown toggle
        page.locator('[data-testid="stSidebar"] [data-testid="stButton"] button').filter(
            has_text=re.compile(r"^Open$")).first.click()
        _settle(page)
        _see(page, "151,936 tokens × 16 dimensions")
        page.get_by_role("heading", name="Overview").first.wait_for(timeout=60_000)
        page.get_by_role("link", name="Token lookup").first.click()
        _settle(page)
        page.get_by_role("heading", name="Token lookup").first.wait_for(timeout=60_000)
        _type(page, "Text", text)
        _see(page, f"{len(want)} piece(s), 16 values each")
        for i in want:
            _in_table(page, str(i))
    except Exception:
        page.screenshot(path=str(EXPORT_DIR / "failed-large-vocabulary.png"), full_page=True)
        raise
    finally:
        page.close()


@pytest.mark.e2e
def test_gate_report_opens_offline_and_prints_on_a4(browser: Any, tmp_path: Any) -> None:
    """The release gate's HTML report (MiniLM against a copy with ten rows zeroed) opens from a file with no
    network and no console error, shows the verdict first, and prints to an A4 PDF."""
    import numpy as np

    import core
    from core.gate import gate
    from core.report import gate as out

    demo = core.load("demo")
    v = np.array(demo.vectors)
    v[2000:2010] = 0
    new = demo.with_vectors(v)
    report = tmp_path / "gate.html"
    report.write_text(out.render_html(gate(new, demo), new, demo), encoding="utf-8")
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: requests.append(req.url))
    try:
        page.goto(report.as_uri(), timeout=60_000)
        assert page.locator("#verdict").inner_text().startswith("Do not ship")
        assert page.locator("#checks tr").count() > 15
        pdf = page.pdf(format="A4")
        assert pdf[:4] == b"%PDF" and len(pdf) > 10_000
    finally:
        page.close()
    assert not errors, errors
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
