"""Which tokens two matrices share, whether they share one space, and the rotation and drift between them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.compare._common import _CHUNK_VALUES, _readonly
from core.errors import ParameterError
from core.matrix import EmbeddingMatrix

#: The run card a fine-tune writes beside its weights (``core.finetune.runs.RUN_FILE``; read here without
#: importing core.finetune, which loads torch).
_RUN_FILE = "run.json"


@dataclass(frozen=True, eq=False)
class VocabularyMatch:
    """Which tokens two matrices share, matched by token string.

    Attributes:
        tokens: the shared tokens, in A's row order.
        rows_a, rows_b: the row of each shared token in A and in B (read-only int64).
        only_a, only_b: tokens only one of them has (in row order).
    """

    tokens: tuple[str, ...]
    rows_a: np.ndarray
    rows_b: np.ndarray
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]

    @property
    def shared(self) -> int:
        return len(self.tokens)



def match_vocabulary(a: EmbeddingMatrix, b: EmbeddingMatrix) -> VocabularyMatch:
    """Shared, only-in-A and only-in-B tokens, matched by exact token string."""
    kb = b.key_to_index
    rows_a: list[int] = []
    rows_b: list[int] = []
    only_a: list[str] = []
    for i, t in enumerate(a.index_to_key):
        j = kb.get(t)
        if j is None:
            only_a.append(t)
        else:
            rows_a.append(i)
            rows_b.append(j)
    ka = a.key_to_index
    only_b = tuple(t for t in b.index_to_key if t not in ka)
    tokens = tuple(a.index_to_key[i] for i in rows_a)
    return VocabularyMatch(tokens, _readonly(np.asarray(rows_a, dtype=np.int64)),
                           _readonly(np.asarray(rows_b, dtype=np.int64)), tuple(only_a), only_b)



def _run_source(m: EmbeddingMatrix) -> str | None:
    """The ``source.fingerprint`` of the run card beside ``m``'s weights, when ``m`` is a fine-tune output."""
    p = m.provenance.path
    if not p:
        return None
    path = Path(p)
    card_path = (path if path.is_dir() else path.parent) / _RUN_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    src = card.get("source") if isinstance(card, dict) else None
    fp = src.get("fingerprint") if isinstance(src, dict) else None
    return fp if isinstance(fp, str) and fp else None


def _quantized_from(m: EmbeddingMatrix) -> str | None:
    fp = m.provenance.extra.get("quantized_from")
    return fp if isinstance(fp, str) else None


def shared_space(a: EmbeddingMatrix, b: EmbeddingMatrix) -> str | None:
    """Why A and B share one coordinate system without alignment, or None when nothing says so.

    True for a matrix and itself, a fine-tune and its source (the run card's ``source.fingerprint`` is the
    other's content fingerprint), two fine-tunes of the same source, and a quantised copy and its original.
    """
    fa, fb = a.fingerprint, b.fingerprint
    if fa == fb:
        return "B is A (the same content fingerprint)"
    src_a, src_b = _run_source(a), _run_source(b)
    if src_b is not None and src_b == fa:
        return "B is a fine-tune of A (its run.json names A as the source)"
    if src_a is not None and src_a == fb:
        return "A is a fine-tune of B (its run.json names B as the source)"
    if src_a is not None and src_a == src_b:
        return "A and B are fine-tunes of the same source (their run.json files say so)"
    if _quantized_from(b) == fa:
        return f"B is a {b.provenance.dtype} copy of A"
    if _quantized_from(a) == fb:
        return f"A is a {a.provenance.dtype} copy of B"
    return None



def _rows_f64(m: EmbeddingMatrix, rows: np.ndarray) -> np.ndarray:
    return np.asarray(m.vectors[rows], dtype=np.float64)


def _unit64(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def fit_rotation(a: EmbeddingMatrix, b: EmbeddingMatrix, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """Orthogonal Procrustes: the rotation R minimising ‖unit(A)·R − unit(B)‖ over the given row pairs.

    Rows are unit-normalised first, so every anchor token counts the same whatever its norm. R = U·Vᵀ from
    the SVD of unit(A)ᵀ·unit(B) (as ``scipy.linalg.orthogonal_procrustes``), accumulated in chunks.

    Raises:
        ParameterError: the dimensions differ.
    """
    if a.dim != b.dim:
        raise ParameterError(f"align: A has {a.dim} dimensions and B {b.dim}; a rotation needs equal dimensions")
    cross = np.zeros((a.dim, a.dim), dtype=np.float64)
    step = max(1, _CHUNK_VALUES // max(1, a.dim))
    for s in range(0, rows_a.size, step):
        xa = _unit64(_rows_f64(a, rows_a[s:s + step]))
        xb = _unit64(_rows_f64(b, rows_b[s:s + step]))
        ok = np.isfinite(xa).all(axis=1) & np.isfinite(xb).all(axis=1)  # a NaN/Inf row has no direction to fit
        cross += xa[ok].T @ xb[ok]
    u, _, vt = np.linalg.svd(cross)
    rot = u @ vt
    return _readonly(rot)


def _drift(a: EmbeddingMatrix, b: EmbeddingMatrix, rows_a: np.ndarray, rows_b: np.ndarray,
           rotation: np.ndarray | None) -> np.ndarray:
    """1 − cosine(a·R, b) per row pair, in float64; two zero rows have drift 0, one zero row drift 1."""
    out = np.empty(rows_a.size, dtype=np.float64)
    step = max(1, _CHUNK_VALUES // max(1, a.dim))
    for s in range(0, rows_a.size, step):
        xa = _rows_f64(a, rows_a[s:s + step])
        if rotation is not None:
            xa = xa @ rotation
        xb = _rows_f64(b, rows_b[s:s + step])
        na, nb = np.linalg.norm(xa, axis=1), np.linalg.norm(xb, axis=1)
        dot = np.einsum("ij,ij->i", xa, xb)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where((na > 0) & (nb > 0), dot / (na * nb), np.where((na == 0) & (nb == 0), 1.0, 0.0))
        drift = 1.0 - np.clip(cos, -1.0, 1.0)
        if rotation is None:  # an unchanged row has drift exactly 0, not a rounding error's worth
            drift[np.all(xa == xb, axis=1)] = 0.0
        out[s:s + step] = drift
    out[~np.isfinite(out)] = np.nan
    return _readonly(out)


