"""Which local paths a shared server may open: only those under the operator's data roots.

The roots come from ``EMBEDSCOPE_DATA_ROOTS`` (paths separated by ``os.pathsep``); by default they are the
working folder and the bundled demo model. A path is resolved — ``..`` collapsed and symlinks followed —
before it is checked, so neither can escape a root.

Uploads are written, under plain file names only, into a folder of the server's upload root named by their
content (:func:`save_uploads`).

A server calls :func:`confined` around its work; every loader then calls :func:`guard_source` (or
:func:`guard`) on what it opens, so the rule lives here and no route has to remember it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

from core._io import atomic_dir
from core.errors import OutputExistsError, ParameterError, PathNotAllowed

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
        ParameterError: the path holds a NUL byte.
    """
    check_path_text(path)
    allowed = list(roots) if roots is not None else data_roots()
    resolved = Path(path).expanduser().resolve()
    for root in allowed:
        if resolved == root or root in resolved.parents:
            return resolved
    raise PathNotAllowed(
        f"{path}: outside the folders this server may open ({', '.join(str(r) for r in allowed)}); "
        f"the operator can allow more with the {ROOTS_ENV} setting (folders separated by '{os.pathsep}')")


# --- Confinement: a server turns it on once, and every loader checks what it opens -------------------------

#: The roots in force for this thread of work (None: no confinement, e.g. the CLI on one's own machine).
_CONFINED: ContextVar[tuple[Path, ...] | None] = ContextVar("embedscope_confined", default=None)


@contextlib.contextmanager
def confined(extra: Sequence[Path] = ()) -> Iterator[tuple[Path, ...]]:
    """Within the block, loaders open only paths under the data roots, the demo model, or ``extra``.

    The dashboard wraps each script run in it (``extra``: its upload and runs folders and the hub cache),
    so that no page, source kind or loader can forget the check. A ``ContextVar`` keeps sessions apart.
    """
    from core import demo_path

    roots = [*data_roots(), *(Path(p).expanduser().resolve() for p in extra)]
    with contextlib.suppress(Exception):  # the demo package is optional
        roots.append(demo_path().resolve())
    token = _CONFINED.set(tuple(dict.fromkeys(roots)))
    try:
        yield tuple(dict.fromkeys(roots))
    finally:
        _CONFINED.reset(token)


def confined_roots() -> tuple[Path, ...] | None:
    """The roots in force, or None when nothing is confined."""
    return _CONFINED.get()


def guard(path: str | os.PathLike[str]) -> Path:
    """``path`` as given, after checking it lies under the roots in force (when confined).

    Raises:
        PathNotAllowed: confined, and ``path`` resolves (symlinks followed) outside every root.
        ParameterError: the path holds a NUL byte.
    """
    check_path_text(path)
    roots = _CONFINED.get()
    if roots is not None:
        check_allowed(path, roots)
    return Path(path)


def check_path_text(path: str | os.PathLike[str]) -> None:
    """Refuse a path that no file system can hold (a NUL byte), with our own error instead of ValueError."""
    if "\0" in os.fspath(path):
        raise ParameterError(f"{os.fspath(path)!r}: a path cannot contain a NUL byte; check the path")


def guard_source(path: str | os.PathLike[str], vocab: str | os.PathLike[str] | None = None) -> None:
    """Check a source and everything a loader may read beside it, when confined.

    Loaders read files next to the weights by name (``tokenizer.json``, ``vocab.txt``, ``config.json``,
    shards, ``metadata.tsv``...), so every symlink in the source's folder (and in the vocabulary's) must stay
    inside the roots too; a symlink that points inside is fine.

    Raises:
        PathNotAllowed: a path, or a link beside it, leaves the roots; the message names the setting.
    """
    guard(path)
    if vocab is not None:
        check_path_text(vocab)
    roots = _CONFINED.get()
    if roots is None:
        return
    p = Path(path).expanduser()
    folders = {p if p.is_dir() else p.parent, p.resolve() if p.resolve().is_dir() else p.resolve().parent}
    if vocab is not None and os.fspath(vocab) != "rows":
        v = Path(vocab).expanduser()
        check_allowed(v, roots)
        folders.add(v.resolve() if v.resolve().is_dir() else v.resolve().parent)
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_symlink():
                check_allowed(entry, roots)


def safe_upload_name(name: str) -> str:
    """The base name of an uploaded file, refusing names that try to leave their folder.

    Raises:
        ParameterError: an empty name, ``.``/``..``, or a name with path separators or NUL bytes.
    """
    if not name or "\0" in name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ParameterError(f"upload name {name!r} is not a plain file name; rename the file and upload it again")
    return name


def save_uploads(files: Iterable[tuple[str, bytes]], root: Path) -> Path:
    """Write uploaded files into a new folder under ``root`` named by their content digest; return it.

    The same uploads map to the same folder, so a rerun does not write them again.
    """
    items = [(safe_upload_name(n), data) for n, data in files]
    h = hashlib.blake2b(digest_size=10)
    for n, data in sorted(items):
        h.update(n.encode() + b"\0" + hashlib.blake2b(data, digest_size=16).digest())
    folder = root / h.hexdigest()
    if not folder.exists():
        # a session uploading the same files may get there first: then the folder is already right
        with contextlib.suppress(OutputExistsError), atomic_dir(folder) as tmp:
            for n, data in items:
                (tmp / n).write_bytes(data)
    return folder
