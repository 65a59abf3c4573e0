"""Run in a fresh process, printing time and peak RSS as JSON: ``python -m bench._bigrun FOLDER JOB``.

Jobs: ``ours`` (open + stats + norms of the big checkpoint), ``raw`` (safetensors' own read of the same tensor)
and ``audit`` (open, then the full audit: ``seconds`` is the audit's, ``open_seconds`` the open's).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench._harness import proc_status_kib


def main(folder: str, what: str) -> None:
    import numpy as np

    base = proc_status_kib("VmRSS")
    t = time.perf_counter()
    extra: dict[str, object] = {}
    if what == "audit":
        import core
        from core.audit import audit

        m = core.load(Path(folder))
        extra["open_seconds"] = time.perf_counter() - t
        extra["open_rss_kib"] = proc_status_kib("VmRSS")  # the imports and the opened table
        t = time.perf_counter()
        report = audit(m)
        extra["summary"] = report.summary()
        shape = m.shape
    elif what == "ours":
        import core
        from core import stats

        m = core.load(Path(folder))
        stats.summary(m)
        float(m.norms.sum())
        shape = m.shape
    else:
        from safetensors import safe_open

        with safe_open(str(Path(folder) / "model-00001-of-00002.safetensors"), framework="pt") as f:
            a = f.get_tensor("model.embed_tokens.weight").float().numpy()
        float(np.asarray(a).sum())
        shape = a.shape
    elapsed = time.perf_counter() - t
    peak = proc_status_kib("VmHWM")
    print(json.dumps({"seconds": elapsed, "peak_kib": peak, "base_kib": base, "shape": list(shape),
                      **extra}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
