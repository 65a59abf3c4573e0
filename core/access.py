"""Which local paths a shared server may open: only those under the operator's data roots.

The roots come from ``EMBEDSCOPE_DATA_ROOTS`` (paths separated by ``os.pathsep``); by default they are the
working folder and the bundled demo model. A path is resolved — ``..`` collapsed and symlinks followed —
before it is checked, so neither can escape a root.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from core.errors import PathNotAllowed

ROOTS_ENV = "EMBEDSCOPE_DATA_ROOTS"


def data_roots(extra: Sequence[Path] = ()) -> list[Path]:
    """The allowed roots, resolved: the setting's, or the working folder and the demo model."""
    setting = os.environ.get(ROOTS_ENV, "").strip()
    if setting:
        roots = [Path(p).expanduser() for p in setting.split(os.pathsep) if p.strip()]
    else:
        roots = [Path.cwd()]
        try:
            from core import demo_path

            roots.append(demo_path())
        except Exception:  # the demo package is optional for this check
            pass
    return [r.resolve() for r in [*roots, *extra]]


def check_allowed(path: str | os.PathLike[str], roots: Sequence[Path] | None = None) -> Path:
    """``path`` resolved, when it lies under one of ``roots`` (default :func:`data_roots`).

    Relative paths are taken from the working folder.

    Raises:
        PathNotAllowed: the resolved path is outside every root; the message names the setting.
    """
    allowed = list(roots) if roots is not None else data_roots()
    resolved = Path(path).expanduser().resolve()
    for root in allowed:
        if resolved == root or root in resolved.parents:
            return resolved
    raise PathNotAllowed(
        f"{path}: outside the folders this server may open ({', '.join(str(r) for r in allowed)}); "
        f"the operator can allow more with the {ROOTS_ENV} setting (folders separated by '{os.pathsep}')")
