"""Writing outputs safely: a temp name beside the target, then an atomic rename.

Nothing a user gave us is ever overwritten: a target that exists needs ``force=True``, and a target that
is one of the source files is refused even then.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import OutputExistsError, ParameterError


def check_target(target: Path, force: bool, sources: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuse a target that exists (unless ``force``) or that is one of the sources."""
    resolved = target.resolve()
    for s in sources:
        sp = Path(s).resolve()
        if resolved == sp or (sp.is_dir() and sp in resolved.parents) or resolved in sp.parents:
            raise ParameterError(f"{target}: this is (or holds) the source {s}; write to a new path")
    if target.exists() and not force:
        raise OutputExistsError(f"{target} exists already; choose a new path or pass --force (force=True)")


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], force: bool = False,
                sources: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success it is renamed onto ``target``, else removed."""
    target = Path(target)
    check_target(target, force, sources)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], force: bool = False,
               sources: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temp folder beside ``target``; on success it replaces ``target``, else it is removed."""
    target = Path(target)
    check_target(target, force, sources)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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
    import hashlib

    items = [(safe_upload_name(n), data) for n, data in files]
    h = hashlib.blake2b(digest_size=10)
    for n, data in sorted(items):
        h.update(n.encode() + b"\0" + hashlib.blake2b(data, digest_size=16).digest())
    folder = root / h.hexdigest()
    if not folder.exists():
        with atomic_dir(folder) as tmp:
            for n, data in items:
                (tmp / n).write_bytes(data)
    return folder
