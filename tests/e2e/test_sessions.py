"""Several browser tabs on one server: one copy of the matrix, and each tab keeps its own choices."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import rss_mib
from tests.e2e.test_browser import _see, _settle, _type


@pytest.mark.e2e
def test_tabs_share_the_matrix_but_not_their_choices(server: str, server_pid: int, browser: Any) -> None:
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(3)]
    pages = [c.new_page() for c in contexts]
    try:
        pages[0].goto(f"{server}/lookup", timeout=120_000)
        _settle(pages[0])
        _see(pages[0], "1 piece(s), 384 values each")
        after_first = rss_mib(server_pid)
        for word, page in zip(["apple", "banana", "cherry"], pages, strict=True):
            if page is not pages[0]:
                page.goto(f"{server}/lookup", timeout=120_000)
                _settle(page)
            _type(page, "Text", word)
        for word, page in zip(["apple", "banana", "cherry"], pages, strict=True):
            page.wait_for_timeout(300)
            _settle(page)
            # each session keeps what it typed; no tab's input leaked into another's
            assert page.get_by_label("Text", exact=True).input_value() == word
            assert page.get_by_text(f"{word} (", exact=False).count() + page.get_by_text(
                "1 piece(s), 384 values each").count() >= 1
        grown = rss_mib(server_pid) - after_first
        matrix_mib = 30522 * 384 * 4 / 2**20
        assert grown < 2 * matrix_mib, f"server grew {grown:.0f} MiB for two more sessions"
    finally:
        for c in contexts:
            c.close()


@pytest.mark.e2e
def test_a_fine_tune_in_one_tab_does_not_freeze_another(server: str, browser: Any) -> None:
    trainer, reader = browser.new_context(), browser.new_context()
    try:
        a = trainer.new_page()
        a.goto(f"{server}/finetune", timeout=120_000)
        _settle(a)
        a.get_by_text("Hyperparameters").first.click()
        epochs = a.get_by_label("epochs", exact=True)
        epochs.fill("60")
        epochs.press("Enter")
        _settle(a)
        a.get_by_role("button", name="Start").first.click()
        a.get_by_text("epoch", exact=False).first.wait_for(timeout=60_000)  # training has started
        b = reader.new_page()
        b.goto(f"{server}/lookup", timeout=120_000)
        _settle(b)
        _type(b, "Text", "interest rates")
        _see(b, "2 piece(s), 384 values each")
        # The other tab was served while the fine-tune still ran: it did not wait for the training to end.
        still_training = a.get_by_text("done in", exact=False).count() == 0
        assert still_training, "the other tab was served only after the fine-tune ended (or the run was too " \
                               "short to tell: raise its epochs)"
        _see(a, "done in", timeout=300_000)
    finally:
        trainer.close()
        reader.close()
