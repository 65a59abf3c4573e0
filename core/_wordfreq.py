"""wordfreq, used so that its word lists do not stay in memory after the work that needed them.

wordfreq keeps every list it has read (about 35 MiB for English) and up to 100,000 looked-up words for the
life of the process. A long-lived dashboard server reads a list now and then (0.1 s), so it lets them go.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def word_lists() -> Iterator[ModuleType]:
    """The ``wordfreq`` module; its cached lists and lookups are cleared when the block ends."""
    import wordfreq

    try:
        yield wordfreq
    finally:
        wordfreq.get_frequency_dict.cache_clear()
        wordfreq.get_frequency_list.cache_clear()
        lookups = getattr(wordfreq, "_wf_cache", None)  # zipf_frequency's per-word cache (not public)
        if isinstance(lookups, dict):
            lookups.clear()
