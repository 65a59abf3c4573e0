"""Side-by-side benchmarks: ``python -m bench [NAME ...]`` (or ``make bench``).

Each ``bench/bench_<name>.py`` has ``run() -> list[Result]``; results print as a markdown table (the one
in the README) and are written to ``bench/RESULTS.md``. Ratios come from one run on one machine, with
both sides measured in the same process, so they hold even when absolute times vary.
"""
