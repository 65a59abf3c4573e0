"""Writing outputs safely: a temp name beside the target, then a rename that claims the target atomically.

Nothing a user gave us is ever overwritten: a target that exists (a dangling symlink counts) needs
``force=True``, and the target is claimed with a rename that fails if the path appeared meanwhile, so two
writers to one path never both "succeed". A target that is, or holds, a file a source was read from (its
weights, ``config.json``, ``merges.txt``, tokenizer and vocabulary files) is refused even with ``force``.
Outputs get the user's umask, like any other tool's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import OutputExistsError, ParameterError

#: Files a loader reads beside the weights it was pointed at: part of the source, never written over.
SOURCE_NAMES = ("config.json", "params.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
                "tokenizer.model", "metadata.tsv", "vectors.tsv")
SOURCE_PATTERNS = ("*.safetensors", "*.index.json", "pytorch_model*.bin", "consolidated.*.pth")


def _protected(sources: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every file (or folder) the sources are made of, resolved."""
    out: list[Path] = []
    for s in sources:
        sp = Path(s).expanduser().resolve()
        out.append(sp)
        folder = sp if sp.is_dir() else sp.parent
        if not folder.is_dir():
            continue
        out += [(folder / n).resolve() for n in SOURCE_NAMES if (folder / n).exists()]
        for pattern in SOURCE_PATTERNS:
            out += [p.resolve() for p in folder.glob(pattern)]
    return out


def check_target(target: Path, force: bool, sources: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuse a target that exists (unless ``force``) or that is, holds, or lies in a source.

    Raises:
        ParameterError: the target is one of the files a source was read from (``force`` or not).
        OutputExistsError: the target exists (a dangling symlink too) and ``force`` is off.
    """
    target = Path(target)
    resolved = target.expanduser().resolve()
    for sp in _protected(sources):
        if resolved == sp or (sp.is_dir() and sp in resolved.parents) or resolved in sp.parents:
            raise ParameterError(f"{target}: this is (or holds) {sp}, which the source was read from; "
                                 "write to a new path")
    if os.path.lexists(target) and not force:
        raise OutputExistsError(f"{target} exists already; choose a new path or pass --force (force=True)")


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """Linux ``renameat2(RENAME_NOREPLACE)``: False when the system or file system does not offer it.

    Raises:
        FileExistsError: ``dst`` exists (any kind of entry).
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dst))
    raise OSError(err, os.strerror(err), str(dst))


def claim(tmp: Path, target: Path) -> None:
    """Move ``tmp`` (a file or folder) to ``target`` only if nothing is there; never replaces.

    Raises:
        OutputExistsError: something appeared at ``target`` (another writer, a user's folder).
    """
    try:
        if _rename_noreplace(tmp, target):
            return
        if tmp.is_dir():
            os.mkdir(target)  # exclusive: claims the name; the rename then replaces our own empty folder
            os.rename(tmp, target)
        else:
            os.link(tmp, target)  # exclusive: fails on any existing entry
            os.unlink(tmp)
    except FileExistsError as err:
        raise OutputExistsError(f"{target} appeared while it was being written (another export or run?); "
                                f"nothing was replaced; choose a new path") from err
    except OSError as err:
        if err.errno == errno.ENOTEMPTY:
            raise OutputExistsError(f"{target} appeared while it was being written; nothing was replaced") from err
        raise


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")


def _new_temp_file(target: Path) -> Path:
    while True:  # O_EXCL and mode 0o666: the umask decides the permissions, as for any other tool's output
        tmp = _temp_name(target)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


def _new_temp_dir(target: Path) -> Path:
    while True:
        tmp = _temp_name(target)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], force: bool = False,
                sources: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success it becomes ``target``, else it is removed.

    Without ``force`` the target is claimed atomically: if anything appeared there meanwhile, nothing is
    replaced and :class:`OutputExistsError` is raised.
    """
    target = Path(target)
    sources = list(sources)
    check_target(target, force, sources)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(target)
    try:
        yield tmp
        if force:
            check_target(target, force, sources)  # again: the path may have become a source's link meanwhile
            if target.is_dir() and not target.is_symlink():
                raise ParameterError(f"{target}: is a folder; a file export cannot replace it; choose a new path")
            os.replace(tmp, target)
        else:
            claim(tmp, target)
    finally:
        _remove(tmp)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], force: bool = False,
               sources: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temp folder beside ``target``; on success it becomes ``target``, else it is removed.

    Without ``force`` the target is claimed atomically (see :func:`atomic_file`); with ``force`` an old
    target is moved aside, the new one claimed, and the old one removed.
    """
    target = Path(target)
    sources = list(sources)
    check_target(target, force, sources)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_dir(target)
    try:
        yield tmp
        old: Path | None = None
        if force and os.path.lexists(target):
            check_target(target, force, sources)
            old = _temp_name(target)
            os.rename(target, old)
        try:
            claim(tmp, target)
        except OutputExistsError:
            if old is not None:
                with contextlib.suppress(OSError):
                    _rename_noreplace(old, target)
            raise
        if old is not None:
            _remove(old)
    finally:
        _remove(tmp)
