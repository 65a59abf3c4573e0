"""The Projection page's first draw of a whole vocabulary in headless Chromium (Debian's ``chromium`` driven
by Playwright, as the e2e tests do): open the matrix in the sidebar, let the page compute PCA of every row,
go to another page and come back, and time from the click until plotly's WebGL map holds every point.

Run: ``python -m bench._browser_draw FOLDER`` where FOLDER holds vectors.npy and vocab.txt
(:func:`bench._bigvocab.build`); prints one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from dashboard import serve

# WebGL without a GPU: Chromium's software rasteriser (SwiftShader) must be asked for explicitly.
ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
        "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
_ALL_DRAWN = """(n) => {
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  if (!gd || !gd._fullData) return false;
  const drawn = gd._fullData.reduce((a, t) => a + (t.visible === true ? (t._length || 0) : 0), 0);
  return drawn >= n && gd.querySelector('canvas') !== null;
}"""


def _metrics(cdp: Any) -> dict[str, float]:
    """The renderer's main-thread counters (seconds of tasks, of script) from the DevTools protocol."""
    return {m["name"]: float(m["value"]) for m in cdp.send("Performance.getMetrics")["metrics"]}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(page: Any, timeout: float) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def server_env(folder: Path) -> dict[str, str]:
    """A bench server's environment: this one, with ``folder`` as the only data root, no hub, no password."""
    env = {**os.environ, "EMBEDSCOPE_DATA_ROOTS": str(folder), "EMBEDSCOPE_NO_HUB": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("EMBEDSCOPE_PASSWORD", None)
    return env


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless, with software WebGL (:data:`ARGS`), from a started Playwright."""
    return playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                      headless=True, args=ARGS)


def open_matrix(page: Any, path: Path, vocab: Path | None, timeout: float) -> None:
    """Open ``path`` as a user does: the sidebar's "Open another matrix" (Local path), its vocabulary, Open.
    Returns once the click is sent; the caller waits for what the opened matrix shows."""
    box = page.get_by_label("File or folder", exact=True)
    if not box.is_visible():  # the expander stays open after a first use
        page.get_by_text("Open another matrix").first.click()
    box.fill(str(path))
    box.press("Enter")
    words = page.get_by_label("Vocabulary (optional)", exact=True)
    words.fill(str(vocab) if vocab is not None else "")
    words.press("Enter")
    _settle(page, timeout)
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Open", exact=True).last.click()


def first_draw(folder: Path, points: int, timeout_s: float = 900) -> dict[str, float]:
    """Seconds from clicking "Projection" (projection already computed) until every point is drawn, and of the
    first visit that computes it."""
    from playwright.sync_api import sync_playwright

    port = serve.free_port()
    proc = serve.start(port, server_env(folder))
    url = f"http://127.0.0.1:{port}"
    ms = timeout_s * 1000
    try:
        serve.wait_healthy(url, proc=proc)
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            page.wait_for_selector('[data-testid="stApp"]', timeout=ms)
            _settle(page, ms)
            open_matrix(page, folder / "vectors.npy", folder / "vocab.txt", ms)
            # The Overview of the opened matrix says its size.
            page.get_by_text(f"{points:,} tokens", exact=False).first.wait_for(timeout=ms)
            _settle(page, ms)
            page.get_by_role("link", name="Token lookup").first.click()
            _settle(page, ms)
            t = time.perf_counter()
            page.get_by_role("link", name="Projection").first.click()
            try:
                page.wait_for_function(_ALL_DRAWN, arg=points, timeout=ms)
            except Exception:
                if os.environ.get("EMBEDSCOPE_SHOT"):
                    page.screenshot(path=os.environ["EMBEDSCOPE_SHOT"], full_page=True)
                raise
            compute = time.perf_counter() - t
            _settle(page, ms)
            webgl = page.evaluate("() => !!document.createElement('canvas').getContext('webgl')")
            page.get_by_role("link", name="Token lookup").first.click()
            _settle(page, ms)
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            before, server0 = _metrics(cdp), _cpu_seconds(proc.pid)
            t = time.perf_counter()
            page.get_by_role("link", name="Projection").first.click()
            page.wait_for_function(_ALL_DRAWN, arg=points, timeout=ms)
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            draw = time.perf_counter() - t
            after, server1 = _metrics(cdp), _cpu_seconds(proc.pid)
            if os.environ.get("EMBEDSCOPE_SHOT"):  # a screenshot to look at, where the caller wants it
                page.screenshot(path=os.environ["EMBEDSCOPE_SHOT"], full_page=True)
            browser.close()
        # CPU time as well as wall time: on a shared machine the wall time says more about the neighbours.
        return {"first_visit_s": compute, "first_draw_s": draw, "webgl": float(webgl),
                "browser_main_thread_s": after["TaskDuration"] - before["TaskDuration"],
                "browser_script_s": after["ScriptDuration"] - before["ScriptDuration"],
                "server_cpu_s": server1 - server0}
    finally:
        serve.stop(proc)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    print(json.dumps(first_draw(target, int(sys.argv[2]) if len(sys.argv) > 2 else 262_144)))
