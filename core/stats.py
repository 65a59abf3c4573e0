"""Summary statistics of a matrix, computed in chunks so that memory stays at one chunk."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.matrix import EmbeddingMatrix

_CHUNK_VALUES = 1 << 24


@dataclass(frozen=True)
class Stats:
    """Whole-matrix statistics over finite values; ``nonfinite`` counts NaN/Inf values left out."""

    shape: tuple[int, int]
    dtype: str
    mean: float
    std: float
    min: float
    max: float
    norm_min: float
    norm_median: float
    norm_max: float
    nonfinite: int

    def to_json(self) -> dict[str, object]:
        """The CLI's ``stats --json`` shape."""
        d = asdict(self)
        return {"shape": list(self.shape), "dtype": self.dtype, "mean": self.mean, "std": self.std,
                "min": self.min, "max": self.max,
                "norms": {"min": self.norm_min, "median": self.norm_median, "max": self.norm_max},
                "nonfinite": d["nonfinite"]}


def _chunks(m: EmbeddingMatrix) -> range:
    return range(0, len(m), max(1, _CHUNK_VALUES // max(1, m.dim)))


def summary(m: EmbeddingMatrix) -> Stats:
    """Mean, std, min, max of all values and min/median/max of the row norms."""
    total = 0
    s = ss = 0.0
    lo, hi = np.inf, -np.inf
    bad = 0
    step = max(1, _CHUNK_VALUES // max(1, m.dim))
    for start in _chunks(m):
        chunk = np.asarray(m.vectors[start:start + step])
        part = float(chunk.sum(dtype=np.float64))
        if not np.isfinite(part):  # NaN/Inf somewhere in the chunk: count them and leave them out
            finite = np.isfinite(chunk)
            bad += int(chunk.size - finite.sum())
            chunk = chunk[finite]
            part = float(chunk.sum(dtype=np.float64))
        if chunk.size:
            flat = chunk.ravel()
            total += flat.size
            s += part
            ss += float(np.einsum("i,i->", flat, flat, dtype=np.float64))
            lo, hi = min(lo, float(flat.min())), max(hi, float(flat.max()))
    mean = s / total if total else float("nan")
    var = max(ss / total - mean * mean, 0.0) if total else float("nan")
    norms = m.norms[np.isfinite(m.norms)]
    nmin, nmed, nmax = ((float(norms.min()), float(np.median(norms)), float(norms.max())) if norms.size
                        else (float("nan"),) * 3)
    return Stats(shape=m.shape, dtype=m.provenance.dtype, mean=mean, std=float(np.sqrt(var)),
                 min=lo if total else float("nan"), max=hi if total else float("nan"),
                 norm_min=nmin, norm_median=nmed, norm_max=nmax, nonfinite=bad)


def per_dimension(m: EmbeddingMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each dimension over all rows (float64, NaN rows left out)."""
    s = np.zeros(m.dim)
    ss = np.zeros(m.dim)
    count = np.zeros(m.dim)
    step = max(1, _CHUNK_VALUES // max(1, m.dim))
    for start in _chunks(m):
        chunk = np.asarray(m.vectors[start:start + step], dtype=np.float64)
        finite = np.isfinite(chunk)
        chunk = np.where(finite, chunk, 0.0)
        s += chunk.sum(axis=0)
        ss += np.square(chunk).sum(axis=0)
        count += finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / count
        std = np.sqrt(np.maximum(ss / count - mean * mean, 0.0))
    return mean, std


def top_dims(vector: np.ndarray, k: int = 10) -> list[tuple[int, float]]:
    """The ``k`` dimensions of largest |value|, largest first, as (dim, value)."""
    k = max(0, min(k, vector.shape[0]))
    idx = np.argsort(-np.abs(vector), kind="stable")[:k]
    return [(int(i), float(vector[i])) for i in idx]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0.0 when either is all zeros)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)) / (na * nb))


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarities of a few vectors (rows)."""
    v = np.asarray(vectors, dtype=np.float64)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    n[n == 0] = 1.0
    u = v / n
    return np.clip(u @ u.T, -1.0, 1.0)
