"""Summary statistics of a matrix (computed in chunks so that memory stays at one chunk), and what a text maps to."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import TokenNotFound
from core.matrix import EmbeddingMatrix

if TYPE_CHECKING:
    import pandas as pd

_CHUNK_VALUES = 1 << 24
#: Values per chunk of :func:`per_dimension`, which holds a float64 copy of each.
_PER_DIM_VALUES = 1 << 22


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


@dataclass(frozen=True)
class LookupPiece:
    """One piece of a looked-up text and its row.

    Attributes:
        token: the vocabulary entry; id: its row (-1 when the vocabulary has none).
        text: the part of the input it came from ("" for a special token the tokenizer added).
        unknown: the tokenizer fell back to its unknown token (or the word is missing); special: [CLS]-like.
        kind: "word", "subword", "special", ... (None without a row); norm, vector: its row's norm and the
            read-only row (None without a row).
    """

    token: str
    id: int
    text: str
    unknown: bool
    special: bool
    kind: str | None
    norm: float | None
    vector: np.ndarray | None

    @property
    def label(self) -> str:
        """``token (id)``: a name that tells apart two pieces of the same spelling."""
        return f"{self.token} ({self.id})"

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "id": self.id, "norm": self.norm,
                "vector": None if self.vector is None else self.vector.astype(float).tolist(),
                "unknown": self.unknown, "special": self.special}


@dataclass(frozen=True)
class TokenLookup:
    """A text as the model reads it: its pieces, their rows, and an error for each piece it lacks.

    Attributes:
        text: the input; dim: values per row.
        pieces: every piece, in order (unknown ones included).
        errors: one :class:`TokenNotFound` per unknown piece, naming the text and the closest tokens.
    """

    text: str
    dim: int
    pieces: tuple[LookupPiece, ...]
    errors: tuple[TokenNotFound, ...]

    @property
    def known(self) -> tuple[LookupPiece, ...]:
        """The pieces the vocabulary has."""
        return tuple(p for p in self.pieces if not p.unknown)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``lookup --json`` shape: text, and per piece token, id, norm, vector, unknown, special."""
        return {"text": self.text, "pieces": [p.to_json() for p in self.pieces]}

    def table(self) -> pd.DataFrame:
        """One row per known piece: piece, id, kind, norm, and the text it came from."""
        import pandas as pd

        known = self.known
        return pd.DataFrame({"piece": [p.token for p in known], "id": [p.id for p in known],
                             "kind": [p.kind for p in known], "norm": [p.norm for p in known],
                             "text": [p.text for p in known]})

    def vectors_frame(self) -> pd.DataFrame:
        """One row per known piece: token, id, then its values as d0, d1, ..."""
        import pandas as pd

        known = self.known
        values = pd.DataFrame(np.stack([np.asarray(p.vector, dtype=np.float64) for p in known]) if known
                              else np.zeros((0, self.dim)), columns=[f"d{i}" for i in range(self.dim)])
        return pd.concat([pd.DataFrame({"token": [p.token for p in known], "id": [p.id for p in known]}),
                          values], axis=1)


def lookup(m: EmbeddingMatrix, text: str, *, special: bool = False, strict: bool = False) -> TokenLookup:
    """``text`` → the tokenizer's pieces → ids → rows (what ``embedscope lookup`` prints and the page shows).

    Args:
        special: keep special tokens such as [CLS]/[SEP] that the tokenizer adds.
        strict: raise on the first unknown piece instead of listing it (with its error).

    Raises:
        TokenNotFound: with ``strict``, for the first piece the vocabulary lacks.
    """
    pieces = m.lookup(text, special=special, strict=strict)
    kinds = m.kinds
    out: list[LookupPiece] = []
    for p in pieces:
        row = 0 <= p.id < len(m)
        out.append(LookupPiece(p.token, p.id, text[p.start:p.end], p.unknown, p.special,
                               kinds[p.id] if row else None, float(m.norms[p.id]) if row else None,
                               m.vectors[p.id] if row else None))
    return TokenLookup(text, m.dim, tuple(out), tuple(m.unknown_error(text, p) for p in pieces if p.unknown))


def per_dimension(m: EmbeddingMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each dimension over all rows (float64, NaN rows left out)."""
    s = np.zeros(m.dim)
    ss = np.zeros(m.dim)
    count = np.zeros(m.dim)
    # One float64 copy of a chunk at a time (32 MiB), squared in place: ~40 MiB of temporary memory at any size.
    step = max(1, _PER_DIM_VALUES // max(1, m.dim))
    for start in range(0, len(m), step):
        chunk = np.array(m.vectors[start:start + step], dtype=np.float64)
        finite = np.isfinite(chunk)
        if finite.all():
            count += chunk.shape[0]
        else:
            chunk[~finite] = 0.0
            count += finite.sum(axis=0)
        del finite
        s += chunk.sum(axis=0)
        ss += np.square(chunk, out=chunk).sum(axis=0)
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
