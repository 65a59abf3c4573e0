"""How much memory one open may take, checked before anything is allocated.

A tiny file can declare a huge matrix (a ``.npy`` header, a pickle naming a shape, a text header); the
loaders ask :func:`check_matrix` with what the file declares and what it holds before they allocate, so
that the error comes first and names the file and the declaration. The budget is
``EMBEDSCOPE_MAX_MATRIX_BYTES`` (bytes; suffixes K, M, G, T allowed), by default a quarter of the
machine's memory.
"""

from __future__ import annotations

import os
import re

from core.errors import FormatError, ParameterError

BUDGET_ENV = "EMBEDSCOPE_MAX_MATRIX_BYTES"
#: What one row-number or vocabulary token costs in Python besides the vectors (a str and a list slot).
TOKEN_BYTES = 72
_FALLBACK = 8 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def machine_memory() -> int | None:
    """Physical memory in bytes, when the platform says."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def max_matrix_bytes() -> int:
    """The per-open budget: the setting, or a quarter of the machine's memory.

    Raises:
        ParameterError: the setting is not a size.
    """
    setting = os.environ.get(BUDGET_ENV, "").strip()
    if setting:
        m = re.fullmatch(r"(\d+)\s*([KMGT]?)i?B?", setting, flags=re.IGNORECASE)
        if not m:
            raise ParameterError(f"{BUDGET_ENV}={setting!r}: expected a size in bytes such as 2000000000 or 2G")
        return int(m.group(1)) * _UNITS[m.group(2).upper()]
    mem = machine_memory()
    return mem // 4 if mem else _FALLBACK


def check_matrix(where: object, shape: tuple[int, ...], *, stored_itemsize: int | None = None,
                 held_bytes: int | None = None, float32_copy: bool = True, what: str = "matrix") -> None:
    """Refuse a declared matrix before allocating it.

    Args:
        where: the file (and tensor), named in the message.
        shape: the declared shape; Python ints, so no product overflows.
        stored_itemsize: bytes per value in the file; with ``held_bytes``, the data the file must hold.
        held_bytes: the data bytes the file really has for it (None: not known).
        float32_copy: the loader will allocate a float32 copy (False: memory-mapped as it is).
        what: how the message calls it.

    Raises:
        FormatError: zero rows or columns, a shape that is not 2-D non-negative integers, more data declared
            than the file holds, or a matrix past the budget (naming ``EMBEDSCOPE_MAX_MATRIX_BYTES``).
    """
    dims = [int(s) for s in shape]
    if len(dims) != 2 or any(s < 0 for s in dims):
        raise FormatError(f"{where}: declares a {what} of shape {dims}; an embedding matrix is 2-D")
    rows, cols = dims
    if rows == 0 or cols == 0:
        raise FormatError(f"{where}: declares a {what} of {rows} rows × {cols} columns; an embedding matrix needs "
                          "at least one row and one column")
    if stored_itemsize is not None and held_bytes is not None and rows * cols * stored_itemsize > held_bytes:
        raise FormatError(f"{where}: declares {rows} × {cols} values ({rows * cols * stored_itemsize:,} bytes) but "
                          f"holds {held_bytes:,} bytes of data; the file is truncated or crafted")
    need = rows * TOKEN_BYTES + (rows * cols * 4 if float32_copy else 0)
    budget = max_matrix_bytes()
    if need > budget:
        raise FormatError(f"{where}: declares a {what} of {rows:,} × {cols:,}, which needs about {need:,} bytes of "
                          f"memory, past this server's budget of {budget:,} bytes per open; the operator can "
                          f"raise it with {BUDGET_ENV}")
