"""`EmbeddingMatrix`: vectors + vocabulary + provenance, and the one lookup path.

    >>> import core
    >>> m = core.load(core.demo_path())              # the bundled all-MiniLM-L6-v2
    >>> m.shape
    (30522, 384)
    >>> m.get_index("hello")                         # every lookup goes through get_index
    7592
    >>> [(p.token, p.id) for p in m.lookup("Hello world")]
    [('hello', 7592), ('world', 2088)]
    >>> m.get_vector("hello").flags.writeable        # returned arrays are read-only
    False
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from core.errors import FormatError, TokenNotFound
from core.tokens import Piece, Tokenizer, WordTokenizer, strip_marker, token_kinds

if TYPE_CHECKING:
    import pandas as pd

    from core.search.index import SearchIndex


@dataclass(frozen=True)
class Provenance:
    """Where a matrix came from.

    Attributes:
        format: the loader that read it ("safetensors", "pytorch-bin", "meta-pth", "pdparams", "npy",
            "word2vec-text", "word2vec-binary", "glove", "projector-tsv", "derived").
        path: the file (or folder) the vectors were read from.
        tensor: the tensor or key name inside the file, when the format has names.
        dtype: the dtype as stored in the file ("bfloat16", "float16", "float32", ...).
        file_bytes: size of the file(s) read.
        vocab_source: where the tokens came from ("tokenizer.json", "vocab.txt", "row numbers", ...).
        tied: whether input and output embeddings are tied, when the checkpoint says.
        candidates: other tensors that could be chosen with ``tensor=``.
        notes: things the user should know (dropped duplicates, replaced bytes, row-number tokens).
        key: a cheap identity (paths, sizes, mtimes, options) for caches; not a content digest.
    """

    format: str
    path: str
    tensor: str | None = None
    dtype: str = "float32"
    file_bytes: int = 0
    vocab_source: str | None = None
    tied: bool | None = None
    candidates: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    key: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view(np.ndarray) if isinstance(a, np.memmap) else a.view()
    view.setflags(write=False)
    return view


class EmbeddingMatrix:
    """An embedding matrix with its vocabulary: rows are tokens, columns are dimensions.

    Storage names follow gensim: ``vectors``, ``index_to_key``, ``key_to_index``. Every lookup goes through
    :meth:`get_index`, which raises :class:`~core.errors.TokenNotFound` with close spellings.

    Args:
        vectors: a 2-D float array, one row per token. Kept as given (no copy) and exposed read-only.
        tokens: one unique string per row.
        tokenizer: the model's tokenizer, when there is one; otherwise words are looked up directly.
        provenance: where the matrix came from.
        metadata: extra per-row columns (e.g. Projector metadata), as column → values.
        unassigned_from: rows from this index on have no tokenizer entry (padding rows).
    """

    def __init__(
        self,
        vectors: np.ndarray,
        tokens: Sequence[str],
        *,
        tokenizer: Tokenizer | None = None,
        provenance: Provenance | None = None,
        metadata: Mapping[str, Sequence[str]] | None = None,
        unassigned_from: int | None = None,
    ) -> None:
        if vectors.ndim != 2:
            raise FormatError(f"an embedding matrix must be 2-D; got shape {tuple(vectors.shape)}")
        if not np.issubdtype(vectors.dtype, np.floating):
            raise FormatError(f"an embedding matrix must hold floats; got {vectors.dtype}")
        if len(tokens) != vectors.shape[0]:
            raise FormatError(f"{len(tokens)} tokens for {vectors.shape[0]} rows; they must match")
        self._vectors = _readonly(vectors)
        self.index_to_key: tuple[str, ...] = tuple(tokens)
        self.key_to_index: dict[str, int] = {t: i for i, t in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise FormatError("tokens must be unique; the loader should have dropped duplicates")
        self.tokenizer: Tokenizer = tokenizer or WordTokenizer(self.key_to_index)
        self.provenance = provenance or Provenance(format="derived", path="")
        self._extra_metadata = {k: list(v) for k, v in (metadata or {}).items()}
        for col, values in self._extra_metadata.items():
            if len(values) != len(tokens):
                raise FormatError(f"metadata column {col!r} has {len(values)} rows for {len(tokens)} tokens")
        self.unassigned_from = unassigned_from

    # -- shape ---------------------------------------------------------------------------------
    @property
    def vectors(self) -> np.ndarray:
        """All rows, read-only (possibly memory-mapped)."""
        return self._vectors

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._vectors.shape[0]), int(self._vectors.shape[1]))

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self._vectors.dtype

    @property
    def has_tokenizer(self) -> bool:
        """True when lookups go through a model tokenizer rather than plain words."""
        return not isinstance(self.tokenizer, WordTokenizer)

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __repr__(self) -> str:
        p = self.provenance
        return f"EmbeddingMatrix({self.shape[0]}×{self.shape[1]}, format={p.format!r}, path={p.path!r})"

    # -- the one lookup path -------------------------------------------------------------------
    def get_index(self, key: str | int) -> int:
        """Row of ``key`` (a token string, or an int row id).

        Raises:
            TokenNotFound: the token is not in the vocabulary (with close spellings).
        """
        if isinstance(key, (int, np.integer)):
            if 0 <= int(key) < len(self):
                return int(key)
            raise TokenNotFound(str(key), detail=f"row ids run from 0 to {len(self) - 1}")
        idx = self.key_to_index.get(key)
        if idx is None:
            raise TokenNotFound(key, self.suggest(key))
        return idx

    def __contains__(self, key: object) -> bool:
        if isinstance(key, (int, np.integer)):
            return 0 <= int(key) < len(self)
        return key in self.key_to_index

    def get_vector(self, key: str | int) -> np.ndarray:
        """The row of ``key``, as a read-only view."""
        return self._vectors[self.get_index(key)]

    __getitem__ = get_vector

    def get_indices(self, keys: Iterable[str | int]) -> np.ndarray:
        """Rows of many keys; raises on the first one missing."""
        return np.fromiter((self.get_index(k) for k in keys), dtype=np.int64)

    @cached_property
    def _plain(self) -> list[str]:
        """Each token without its marker, case-folded; a token that is already so is kept, not copied."""
        scheme = self.tokenizer.scheme
        out = []
        for t in self.index_to_key:
            p = strip_marker(t, scheme)[0].casefold()
            out.append(t if p == t else p)
        return out

    def suggest(self, word: str, n: int = 5) -> list[str]:
        """Up to ``n`` vocabulary entries spelled most like ``word`` (case and markers ignored)."""
        w = word.casefold().strip()
        if not w:
            return []
        plain = self._plain
        exact = [self.index_to_key[i] for i, p in enumerate(plain) if p == w]
        pool = {p: i for i, p in enumerate(plain) if abs(len(p) - len(w)) <= 2 and p != w}
        close = difflib.get_close_matches(w, list(pool), n=n, cutoff=0.6)
        out = exact + [self.index_to_key[pool[c]] for c in close]
        return list(dict.fromkeys(out))[:n]

    def lookup(self, text: str, special: bool = False, strict: bool = False) -> list[Piece]:
        """Tokenise ``text`` the way the model does and map each piece to its row.

        Args:
            text: any text ("Hello", "Hello world", "苹果").
            special: keep special tokens such as [CLS]/[SEP] that the tokenizer adds.
            strict: raise on the first piece that is not in the vocabulary (or maps to the unknown token).

        Raises:
            TokenNotFound: with ``strict``, for the first unknown piece, naming the text it came from.
        """
        pieces = self.tokenizer.encode(text, special=special)
        out: list[Piece] = []
        for p in pieces:
            if p.id >= len(self) and not p.unknown:
                p = replace(p, unknown=True)
            out.append(p)
        if strict:
            self.raise_for_unknown(text, out)
        return out

    def text_vector(self, text: str, strict: bool = True) -> tuple[np.ndarray, list[Piece]]:
        """One vector for a text: its row when it is one piece, else the mean of its pieces' rows.

        Returns:
            the (read-only) vector and the pieces it was averaged over.

        Raises:
            TokenNotFound: a piece is unknown (with ``strict``), or the text has no pieces.
        """
        pieces = [p for p in self.lookup(text, strict=strict) if not p.unknown]
        if not pieces:
            raise TokenNotFound(text, self.suggest(text), detail="it gives no tokens")
        if len(pieces) == 1:
            return self._vectors[pieces[0].id], pieces
        vec = np.asarray(self._vectors[[p.id for p in pieces]], dtype=np.float32).mean(axis=0)
        vec.setflags(write=False)
        return vec, pieces

    def raise_for_unknown(self, text: str, pieces: Sequence[Piece]) -> None:
        """Raise :class:`TokenNotFound` for the first unknown piece of ``text``."""
        for p in pieces:
            if p.unknown:
                raise self.unknown_error(text, p)

    def unknown_error(self, text: str, piece: Piece) -> TokenNotFound:
        """The error an unknown ``piece`` of ``text`` makes: the text it came from and the closest tokens."""
        span = text[piece.start:piece.end] or piece.token
        detail = ""
        if piece.id >= 0:
            detail = f"the tokenizer maps it to {piece.token}" if piece.id < len(self) else (
                f"the tokenizer gives id {piece.id} but the matrix has {len(self)} rows")
        return TokenNotFound(span, self.suggest(span), detail=detail)

    # -- derived, computed once ----------------------------------------------------------------
    @cached_property
    def norms(self) -> np.ndarray:
        """L2 norm of every row (float32, read-only), computed once in chunks."""
        out = np.empty(len(self), dtype=np.float32)
        step = max(1, (1 << 24) // max(1, self.dim))
        for s in range(0, len(self), step):
            chunk = np.asarray(self._vectors[s:s + step], dtype=np.float32)
            out[s:s + step] = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
        out.setflags(write=False)
        return out

    @cached_property
    def upper_key_to_index(self) -> dict[str, int]:
        """Upper-cased key → its first row (gensim's case-insensitive ``ok_vocab`` for benchmarks), built once."""
        return {k.upper(): i for i, k in reversed(list(enumerate(self.index_to_key)))}

    @property
    def search_index(self) -> SearchIndex:
        """What searches derive from this matrix (norms, masks, device copy, int8 first pass once prepared).

        One per matrix, made at its first search; threads that ask at once get the same one.
        """
        index = self.__dict__.get("_search_index")
        if index is None:
            from core.search.index import SearchIndex

            index = self.__dict__.setdefault("_search_index", SearchIndex(self))
        return index

    @cached_property
    def kinds(self) -> tuple[str, ...]:
        """Kind of each row: special / word / subword / number / punctuation / cjk / other / unassigned."""
        return tuple(token_kinds(self.index_to_key, self.tokenizer.special_tokens, self.tokenizer.scheme,
                                 self.unassigned_from))

    @property
    def metadata(self) -> pd.DataFrame:
        """Per-row table: id, token, kind, and any extra columns the file carried."""
        import pandas as pd

        df = pd.DataFrame({"id": np.arange(len(self)), "token": self.index_to_key, "kind": self.kinds})
        for col, values in self._extra_metadata.items():
            # a file's own column never hides ours: "kind" from a metadata.tsv becomes "kind (file)"
            df[col if col not in ("id", "token", "kind") else f"{col} (file)"] = values
        return df

    @property
    def metadata_columns(self) -> list[str]:
        """Names of the extra metadata columns (e.g. from a Projector metadata.tsv)."""
        return list(self._extra_metadata)

    @cached_property
    def fingerprint(self) -> str:
        """Content digest of the vectors and tokens (16 hex chars); stable across copies of a file."""
        h = hashlib.blake2b(digest_size=8)
        h.update(repr(self.shape).encode())
        step = max(1, (1 << 22) // max(1, self.dim))
        for s in range(0, len(self), step):
            h.update(np.ascontiguousarray(self._vectors[s:s + step]).tobytes())
        self._hash_tokens(h)
        return h.hexdigest()

    @cached_property
    def vocabulary_digest(self) -> str:
        """Digest of the tokens alone, in row order (16 hex chars): equal for matrices of one vocabulary."""
        h = hashlib.blake2b(digest_size=8)
        self._hash_tokens(h)
        return h.hexdigest()

    def _hash_tokens(self, h: hashlib.blake2b) -> None:
        """Feed every token, in row order and NUL-terminated, to ``h`` (both digests of a matrix read them so)."""
        for t in self.index_to_key:
            h.update(t.encode("utf-8", "surrogatepass") + b"\0")

    def share_vocabulary(self, other: EmbeddingMatrix) -> bool:
        """Use ``other``'s tokens and token index when both matrices hold the same tokens in the same order.

        Two matrices of one vocabulary (a model before and after fine-tuning, two releases) then keep one copy
        of it: about 40 MiB for 262,144 tokens. Nothing a lookup answers changes, the tokens being equal; a
        word tokenizer is rebuilt over the shared index. Returns whether the vocabulary is now shared.
        """
        if self.key_to_index is other.key_to_index:
            return True
        if self.index_to_key != other.index_to_key:
            return False
        self.index_to_key, self.key_to_index = other.index_to_key, other.key_to_index
        if isinstance(self.tokenizer, WordTokenizer):
            self.tokenizer = WordTokenizer(other.key_to_index, self.tokenizer.source, self.tokenizer.cjk_chars)
        for derived in ("_plain", "upper_key_to_index"):  # equal strings of the old copy: made again if asked
            self.__dict__.pop(derived, None)
        return True

    def with_vectors(self, vectors: np.ndarray, provenance: Provenance | None = None) -> EmbeddingMatrix:
        """A new matrix with the same vocabulary and tokenizer and other vectors of the same row count."""
        if vectors.shape[0] != len(self):
            raise FormatError(f"{vectors.shape[0]} rows given for a vocabulary of {len(self)}")
        return EmbeddingMatrix(vectors, self.index_to_key, tokenizer=self.tokenizer,
                               provenance=provenance or replace(self.provenance, format="derived", key=""),
                               metadata=self._extra_metadata, unassigned_from=self.unassigned_from)
