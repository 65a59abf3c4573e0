"""Hugging Face hub ids: download only the weights and tokenizer files, then open the local folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from core.errors import OfflineError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Files worth downloading: weights, their index, config and tokenizer. Nothing else (no code).
ALLOW = ["*.safetensors", "*.safetensors.index.json", "config.json", "tokenizer.json",
         "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt", "special_tokens_map.json",
         "tokenizer.model"]
#: Set to 1/true to turn hub downloads off entirely (shared servers).
NO_HUB_ENV = "EMBEDSCOPE_NO_HUB"


def hub_disabled() -> bool:
    return os.environ.get(NO_HUB_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def looks_like_hub_id(source: str) -> bool:
    return bool(HUB_ID.match(source)) and not Path(source).exists()


def download(repo_id: str, revision: str | None = None) -> Path:
    """Local folder holding the hub model's weights and tokenizer files (downloaded when needed).

    Raises:
        OfflineError: downloads are turned off, or the hub cannot be reached and nothing is cached.
    """
    if hub_disabled():
        raise OfflineError(f"{repo_id!r} is a hub id, but hub downloads are turned off ({NO_HUB_ENV}); "
                           "open a local folder instead")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - a core dependency
        raise OfflineError("huggingface_hub is not installed; open a local folder instead") from err
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW)
    except Exception as err:  # network, auth, missing repo: all end as one clear message
        raise OfflineError(
            f"could not download {repo_id!r} from the Hugging Face hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''}). If this machine is offline, download the "
            "model folder elsewhere and open its local path") from err
    return Path(folder)
