"""Handing freed memory back to the system, so a long-lived server's size follows what it holds.

A page's long job (an audit, a comparison) allocates hundreds of MiB of temporary blocks on a script thread.
glibc keeps what a thread freed in that thread's arena for reuse, so the server's RSS stays at its peak after
the job although Python no longer holds the memory; with one arena per thread, every session's thread keeps its
own. Two arenas (set before the server starts threads) and a trim after each long job give it back. Both are
glibc calls; elsewhere (macOS, musl) they are skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: mallopt's parameter for the number of arenas (glibc's malloc.h).
_M_ARENA_MAX = -8
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:  # pragma: no cover - no C library to load
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before threads start); False where it is not glibc."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas))


def give_back() -> bool:
    """Return freed heap memory to the system (glibc's malloc_trim); False where it is not glibc."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
