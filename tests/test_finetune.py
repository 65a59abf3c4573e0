"""Fine-tuning: SGNS and classification on the real MiniLM, checked against independent oracles.

Outputs are read back with the safetensors library and compared with the weights conftest reads the same
way; subsampling and the negative distribution are compared with gensim's own tables; classification
reports come from scikit-learn; optimiser behaviour is watched through torch's global optimiser hook.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import core
from core import charts
from core import finetune as ft
from core.errors import Cancelled, FormatError, OutputExistsError, ParameterError
from core.finetune import _sgns_data as sd
from core.matrix import EmbeddingMatrix

PAIRS = [("river", "mortgage"), ("guitar", "satellite"), ("pencil", "volcano"), ("orchestra", "blanket")]
TOPICS = [["boat", "fish", "bridge", "loan", "bank", "rent"], ["song", "band", "stage", "orbit", "rocket", "space"],
          ["paper", "draw", "school", "lava", "ash", "mountain"], ["violin", "concert", "music", "bed", "sleep", "wool"]]
SHARED = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from"]


def _cooccurrence_lines(n: int = 400, seed: int = 0) -> list[str]:
    """Each line holds one chosen pair side by side, three words of the pair's topic and four common words."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        k = i % len(PAIRS)
        words = list(rng.choice(TOPICS[k], 3)) + list(rng.choice(SHARED, 4))
        rng.shuffle(words)
        pos = int(rng.integers(0, len(words)))
        words[pos:pos] = list(PAIRS[k]) if rng.random() < 0.5 else list(PAIRS[k][::-1])
        lines.append(" ".join(words))
    return lines


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _read_weights(folder: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))["embeddings.word_embeddings.weight"]


@pytest.fixture(scope="module")
def cooc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cooc") / "pairs.txt"
    p.write_text("\n".join(_cooccurrence_lines()) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def sgns_run(demo: core.EmbeddingMatrix, cooc_file: Path, tmp_path_factory: pytest.TempPathFactory) -> ft.Run:
    out = tmp_path_factory.mktemp("runs") / "pairs-run"
    config = ft.SGNSConfig(epochs=4, seed=3, watch=("river", "guitar"))
    return ft.finetune(demo, cooc_file, config, out)


# -- SGNS -----------------------------------------------------------------------------------------
def test_sgns_pulls_cooccurring_pairs_together(sgns_run: ft.Run, demo_weights: np.ndarray,
                                               demo: core.EmbeddingMatrix) -> None:
    after = _read_weights(sgns_run.path)
    idx = {w: demo.key_to_index[w] for pair in PAIRS for w in pair}
    together = [_cos(after[idx[a]], after[idx[b]]) for a, b in PAIRS]
    before = [_cos(demo_weights[idx[a]], demo_weights[idx[b]]) for a, b in PAIRS]
    unrelated = [_cos(after[idx[PAIRS[i][0]]], after[idx[PAIRS[j][1]]])
                 for i in range(len(PAIRS)) for j in range(len(PAIRS)) if i != j]
    assert all(t > b for t, b in zip(together, before, strict=True)), (together, before)
    assert min(together) > max(unrelated), (together, unrelated)


def test_sgns_leaves_absent_rows_bit_identical(sgns_run: ft.Run, demo_weights: np.ndarray,
                                               demo: core.EmbeddingMatrix, cooc_file: Path) -> None:
    after = _read_weights(sgns_run.path)
    present = np.zeros(len(demo), dtype=bool)
    for line in cooc_file.read_text(encoding="utf-8").splitlines():
        for p in demo.lookup(line):
            present[p.id] = True
    assert after.dtype == np.float32 and after.shape == demo_weights.shape
    assert np.array_equal(after[~present].view(np.uint32), demo_weights[~present].view(np.uint32))
    assert (after[present] != demo_weights[present]).any(axis=1).all()
    assert sgns_run.card["output"]["rows_changed"] == int(present.sum())


def test_sgns_loss_falls(sgns_run: ft.Run) -> None:
    epochs = sgns_run.card["epochs"]
    assert len(epochs) == 4
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    curve = sgns_run.card["loss_curve"]
    assert len(curve["step"]) == len(curve["loss"]) == sgns_run.card["steps"]
    assert np.mean(curve["loss"][-5:]) < np.mean(curve["loss"][:5])


def test_output_reopens_like_any_matrix(sgns_run: ft.Run, demo: core.EmbeddingMatrix) -> None:
    tuned = core.load(sgns_run.path)
    assert tuned.shape == demo.shape
    assert tuned.index_to_key == demo.index_to_key
    assert tuned.provenance.tensor == "embeddings.word_embeddings.weight"
    assert [p.id for p in tuned.lookup("Hello world")] == [7592, 2088]
    assert tuned.fingerprint == sgns_run.card["output"]["fingerprint"] != demo.fingerprint
    assert {"model.safetensors", "tokenizer.json", "vocab.txt", "config.json", "run.json"} <= {
        p.name for p in sgns_run.path.iterdir()}


def test_run_card_reloads_and_matches(sgns_run: ft.Run, demo: core.EmbeddingMatrix, cooc_file: Path) -> None:
    card = json.loads((sgns_run.path / "run.json").read_text(encoding="utf-8"))
    assert ft.load_run(sgns_run.path).card == card
    assert ft.config_from_card(card) == ft.SGNSConfig(epochs=4, seed=3, watch=("river", "guitar"))
    raw = cooc_file.read_bytes()
    assert card["corpus"]["digest"] == hashlib.blake2b(raw, digest_size=8).hexdigest()
    assert card["corpus"]["bytes"] == len(raw)
    n_tokens = sum(len(demo.lookup(line)) for line in raw.decode().splitlines())
    assert card["corpus"]["tokens"] == n_tokens and card["corpus"]["unknown"] == card["unknown_tokens"] == 0
    assert card["tokens_seen"] == n_tokens * 4
    assert card["source"]["fingerprint"] == demo.fingerprint
    assert card["objective"] == "sgns" and card["device"] == "cpu" and card["run_id"] == "pairs-run"
    assert card["duration_s"] > 0 and card["steps"] == len(card["grad_norm"]["value"])
    assert all(v > 0 and math.isfinite(v) for v in card["grad_norm"]["value"])
    watch = card["watch"]
    assert watch["tokens"] == ["river", "guitar"]
    assert sorted({(r["epoch"], r["token"]) for r in watch["per_epoch"]}) == sorted(
        (e, w) for e in range(5) for w in ("river", "guitar"))
    first = next(r for r in watch["per_epoch"] if r["epoch"] == 0 and r["token"] == "river")
    last = next(r for r in watch["per_epoch"] if r["epoch"] == 4 and r["token"] == "river")
    assert first["cosine_to_start"] == pytest.approx(1.0)
    assert last["cosine_to_start"] < 1.0 and len(last["neighbours"]) == 5
    from gensim.models import KeyedVectors  # the oracle: gensim's most_similar on the written matrix

    kv = KeyedVectors(demo.dim)
    kv.add_vectors(list(demo.index_to_key), _read_weights(sgns_run.path))
    expected = kv.most_similar("river", topn=5)
    assert [t for t, _ in last["neighbours"]] == [t for t, _ in expected]
    np.testing.assert_allclose([s for _, s in last["neighbours"]], [s for _, s in expected], atol=2e-4)
    runs = ft.list_runs(sgns_run.path.parent)
    assert [r.run_id for r in runs] == ["pairs-run"] and runs[0].summary()["objective"] == "sgns"


def test_run_card_is_typed_and_writes_back_the_file_byte_for_byte(sgns_run: ft.Run,
                                                                  demo: core.EmbeddingMatrix) -> None:
    text = (sgns_run.path / "run.json").read_text(encoding="utf-8")
    card = sgns_run.card
    assert isinstance(card, ft.RunCard) and card.objective == "sgns" and card.status == "completed"
    assert card.source.fingerprint == demo.fingerprint and card.source.shape == demo.shape
    assert card.output.written and card.output.fingerprint == core.load(sgns_run.path).fingerprint
    assert card.output.files == tuple(sorted(p.name for p in sgns_run.path.iterdir()))
    assert list(card.curves) == ["loss_curve", "grad_norm"] and card.world_size == 1
    # the file is the public contract: the typed card gives it back key for key, in the same order
    assert json.dumps(card.to_json(), indent=1, ensure_ascii=False) == text
    assert list(card) == list(json.loads(text)) and card["source"] == json.loads(text)["source"]


def test_run_cards_from_before_distributed_runs_are_read(sgns_run: ft.Run, tmp_path: Path) -> None:
    old = json.loads((sgns_run.path / "run.json").read_text(encoding="utf-8"))
    del old["distributed"]  # cards written before multi-process runs had no such entry
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text(json.dumps(old), encoding="utf-8")
    run = ft.load_run(tmp_path / "old")
    assert run.card.world_size == 1 and run.card.get("distributed") == {"world_size": 1, "backend": "none"}
    assert run.summary()["objective"] == "sgns" and run.card.metrics == old["metrics"]
    del old["source"]
    (tmp_path / "old" / "run.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(FormatError, match=r"old/run\.json: no 'source'"):
        ft.load_run(tmp_path / "old")
    with pytest.raises(FormatError, match="not an Embedscope run card"):
        ft.RunCard.from_json({**old, "format": "something-else/1"})


def test_subsampling_and_negatives_match_gensim(lee_corpus: Path) -> None:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    sents = list(LineSentence(str(lee_corpus)))
    model = Word2Vec(vector_size=10, min_count=1, sample=1e-3, sg=1, negative=5, workers=1)
    model.build_vocab(sents)
    words = model.wv.index_to_key
    counts = np.array([model.wv.get_vecattr(w, "count") for w in words], dtype=np.int64)
    ours = sd.keep_probability(counts, 1e-3)
    theirs = np.array([model.wv.get_vecattr(w, "sample_int") for w in words], dtype=np.float64) / 2**32
    np.testing.assert_allclose(ours, np.minimum(theirs, 1.0), atol=1e-6)
    table = sd.negative_table(counts, 1 << 22)
    share = np.bincount(table, minlength=len(words)) / table.shape[0]
    cum = model.cum_table.astype(np.float64)
    gensim_share = np.diff(np.r_[0.0, cum]) / cum[-1]
    np.testing.assert_allclose(share, gensim_share, atol=2e-6)


def test_dynamic_window_pairs_stay_inside_documents() -> None:
    tok = torch.arange(40)
    doc = torch.tensor([0] * 25 + [1] * 15)
    keep = torch.ones(40)
    c, x, kept = sd.pairs(tok, doc, keep, 3, torch.Generator().manual_seed(0))
    assert kept == 40
    assert (doc[c] == doc[x]).all() and ((c - x).abs() <= 3).all() and (c != x).all()
    # every centre sees both sides up to its own reach (1..3), so pairs come in mirror images
    fwd = {(int(a), int(b)) for a, b in zip(c, x, strict=True)}
    for a, b in fwd:
        reach = abs(a - b)
        assert all((a, a + s * r) in fwd for r in range(1, reach + 1) for s in (-1, 1)
                   if 0 <= a + s * r < 40 and doc[a + s * r] == doc[a])


@pytest.mark.parametrize("context", ["copy", "random", "tied"])
def test_each_context_mode_trains_only_corpus_rows(demo: core.EmbeddingMatrix, context: str) -> None:
    corpus = ft.tokenize(demo, _cooccurrence_lines(60))
    res = ft.train_sgns(demo, corpus, ft.SGNSConfig(epochs=1, context=context, watch_size=2))
    assert set(res.rows.tolist()) == set(np.unique(corpus.ids).tolist())
    new = res.apply(demo)
    mask = np.ones(len(demo), bool)
    mask[res.rows] = False
    assert np.array_equal(new[mask], np.asarray(demo.vectors)[mask])


def test_same_seed_same_result_on_cpu(demo: core.EmbeddingMatrix) -> None:
    corpus = ft.tokenize(demo, _cooccurrence_lines(80))
    a = ft.train_sgns(demo, corpus, ft.SGNSConfig(epochs=1, seed=11, watch_size=0))
    b = ft.train_sgns(demo, corpus, ft.SGNSConfig(epochs=1, seed=11, watch_size=0))
    c = ft.train_sgns(demo, corpus, ft.SGNSConfig(epochs=1, seed=12, watch_size=0))
    assert np.array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, c.vectors)


def test_progress_and_updates_are_reported(demo: core.EmbeddingMatrix) -> None:
    corpus = ft.tokenize(demo, _cooccurrence_lines(80))
    seen: list[tuple[float, str]] = []
    updates: list[ft.TrainingUpdate] = []
    ft.train_sgns(demo, corpus, ft.SGNSConfig(epochs=2, batch_size=64, watch_size=1),
                  progress=lambda f, msg: seen.append((f, msg)), on_update=updates.append)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("tokens/s" in msg and "ETA" in msg and "loss" in msg for _, msg in seen)
    epoch_ends = [u for u in updates if u.event == "epoch"]
    assert [u.epoch for u in epoch_ends] == [1, 2]
    assert all(u.tokens_per_s > 0 for u in updates) and updates[-1].eta_s == pytest.approx(0.0, abs=1e-6)


def test_word_vocabulary_source_round_trips(tmp_path: Path, lee_model: Any, lee_corpus: Path) -> None:
    kv = lee_model.wv
    src = tmp_path / "lee.txt"
    kv.save_word2vec_format(str(src))
    m = core.load(src)
    corpus_file = tmp_path / "small.txt"
    corpus_file.write_text("\n".join(lee_corpus.read_text(encoding="utf-8").splitlines()[:20]), encoding="utf-8")
    run = ft.finetune(m, corpus_file, ft.SGNSConfig(epochs=1, min_count=2, watch_size=2), tmp_path / "out")
    tuned = core.load(run.path)
    assert tuned.index_to_key == tuple(kv.index_to_key) and not tuned.has_tokenizer
    untouched = np.ones(len(m), bool)
    untouched[run.card["watch"]["rows"][0]] = True
    from safetensors.numpy import load_file

    after = load_file(str(run.path / "model.safetensors"))["embeddings"]
    changed = (after != kv.vectors).any(axis=1)
    assert 0 < changed.sum() == run.card["output"]["rows_changed"]
    assert run.card["metrics"]["tokens_dropped_min_count"] > 0


def test_cjk_character_level_for_word_vocabularies() -> None:
    vocab = ["利", "好", "减", "持", "消息", "[UNK]", "银行"]
    m = EmbeddingMatrix(np.eye(len(vocab), dtype=np.float32), vocab)
    words = ft.tokenize(m, ["利好 消息", "银行 减持"], cjk_chars=False)
    assert words.ids.tolist() == [4, 6] and words.unknown == 2
    assert dict(words.unknown_examples) == {"利好": 1, "减持": 1}
    chars = ft.tokenize(m, ["利好 消息", "银行 减持"], cjk_chars=True)
    assert chars.ids.tolist() == [0, 1, 2, 3] and chars.unknown == 4  # 消息/银行 become unknown characters
    mapped = ft.tokenize(m, ["利好 消息"], unknown="unk")
    assert mapped.ids.tolist() == [5, 4] and mapped.unknown == 1


def test_unknown_pieces_are_counted_with_the_model_tokenizer(demo: core.EmbeddingMatrix) -> None:
    c = ft.load_corpus(demo, ft.demo_corpus())
    assert c.unknown > 0 and c.unknown_policy == "skip"
    assert demo.key_to_index["[UNK]"] not in set(c.ids.tolist())
    mapped = ft.load_corpus(demo, ft.demo_corpus(), unknown="unk")
    assert mapped.tokens == c.tokens + c.unknown and mapped.unknown == c.unknown


# -- classification --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classify_run(demo: core.EmbeddingMatrix, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A classification run on the demo labels, with torch's optimiser hook recording every step."""
    calls: list[dict[str, Any]] = []

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
        emb = next(g for g in opt.param_groups if g.get("name") == "embedding")["params"][0]
        calls.append({"opt": id(opt), "lrs": {g.get("name"): g["lr"] for g in opt.param_groups},
                      "emb_requires_grad": emb.requires_grad, "emb_has_grad": emb.grad is not None,
                      "norm_after_clip": norm})

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(hook)
    config = ft.ClassifyConfig(epochs=6, freeze_epochs=2, patience=6, max_grad_norm=0.1, seed=1)
    try:
        run = ft.finetune(demo, ft.demo_labels(), config, tmp_path_factory.mktemp("cls") / "cls-run")
    finally:
        handle.remove()
    yield {"run": run, "calls": calls, "config": config}


def test_classification_beats_or_matches_the_frozen_baseline(classify_run: dict[str, Any]) -> None:
    mt = classify_run["run"].card["metrics"]
    assert mt["finetuned_macro_f1"] >= mt["baseline_macro_f1"] > 0.5
    for key in ("baseline", "finetuned"):
        rep = mt[key]["report"]
        assert set(mt["classes"]) <= set(rep) and {"macro avg", "weighted avg"} <= set(rep)
        assert rep["macro avg"]["f1-score"] == pytest.approx(mt[f"{key}_macro_f1"])
    assert mt["val_size"] == 64 and mt["train_size"] == 256


def test_learning_rates_freezing_and_clipping_are_applied(classify_run: dict[str, Any]) -> None:
    calls, config = classify_run["calls"], classify_run["config"]
    baseline_opt, tuned_opt = dict.fromkeys(c["opt"] for c in calls)
    base = [c for c in calls if c["opt"] == baseline_opt]
    tuned = [c for c in calls if c["opt"] == tuned_opt]
    assert all(not c["emb_requires_grad"] and not c["emb_has_grad"] for c in base)
    per_epoch = math.ceil(256 / config.batch_size)
    frozen, unfrozen = tuned[:per_epoch * config.freeze_epochs], tuned[per_epoch * config.freeze_epochs:]
    assert frozen and all(not c["emb_requires_grad"] and not c["emb_has_grad"] for c in frozen)
    assert unfrozen and all(c["emb_requires_grad"] and c["emb_has_grad"] for c in unfrozen)
    assert all(c["lrs"] == {"embedding": config.lr_embedding, "head": config.lr_head} for c in tuned)
    assert config.lr_embedding < config.lr_head
    assert max(c["norm_after_clip"] for c in calls) <= config.max_grad_norm * (1 + 1e-4)
    clip = classify_run["run"].card["clipping"]
    assert max(clip["before"]) > config.max_grad_norm  # clipping had work to do
    epochs = classify_run["run"].card["epochs"]
    assert [e["embedding_frozen"] for e in epochs] == [True, True] + [False] * (len(epochs) - 2)


def test_classification_keeps_rows_outside_the_texts(classify_run: dict[str, Any], demo_weights: np.ndarray) -> None:
    run = classify_run["run"]
    after = _read_weights(run.path)
    changed = (after != demo_weights).any(axis=1)
    assert 0 < changed.sum() <= run.card["output"]["rows_trained"] < 2000


# -- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("content", "match"), [
    ("", "empty"), ("\n  \n\n", "empty"), ("🦜 🦜\n", "empty after tokenising"),
])
def test_empty_corpus(demo: core.EmbeddingMatrix, tmp_path: Path, content: str, match: str) -> None:
    p = tmp_path / "c.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(FormatError, match=match):
        ft.load_corpus(demo, p)


def test_non_utf8_corpus_names_the_line(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    p = tmp_path / "latin1.txt"
    p.write_bytes("first line\nsecond caf\xe9 line\n".encode("latin-1"))
    with pytest.raises(FormatError, match=r"line 2: not UTF-8"):
        ft.load_corpus(demo, p)


def test_missing_columns_are_named(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("body,topic\nrates rose,policy\nstocks fell,markets\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"text_column='text'.*'body', 'topic'"):
        ft.load_corpus(demo, csv)
    assert ft.load_corpus(demo, csv, column="body").documents == 2
    with pytest.raises(ParameterError, match=r"label_column='label'"):
        ft.read_labelled(csv, text_column="body")
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"text": "rates rose"}\n{"body": "stocks fell"}\n', encoding="utf-8")
    with pytest.raises(ParameterError, match=r"line 2 has no such key"):
        ft.load_corpus(demo, jl)


def test_single_class_and_single_example_labels(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("text,label\nrates rose,up\nstocks rose,up\n", encoding="utf-8")
    texts, labels, src = ft.read_labelled(one)
    with pytest.raises(FormatError, match="at least two classes"):
        ft.prepare(demo, texts, labels, source=src)
    lonely = tmp_path / "lonely.csv"
    lonely.write_text("text,label\nrates rose,up\nstocks rose,up\nbonds fell,down\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"'down' have only one example"):
        ft.finetune(demo, lonely, ft.ClassifyConfig(), tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(("config", "field"), [
    (ft.SGNSConfig(window=0), "window"), (ft.SGNSConfig(negatives=-1), "negatives"), (ft.SGNSConfig(lr=0), "lr"),
    (ft.SGNSConfig(min_lr=1.0), "min_lr"), (ft.SGNSConfig(context="shared"), "context"),
    (ft.SGNSConfig(unknown="drop"), "unknown"), (ft.SGNSConfig(epochs=2.5), "epochs"),  # type: ignore[arg-type]
    (ft.SGNSConfig(watch="bank"), "watch"),  # type: ignore[arg-type]
    (ft.ClassifyConfig(freeze_epochs=20), "freeze_epochs"), (ft.ClassifyConfig(val_fraction=0), "val_fraction"),
    (ft.ClassifyConfig(max_grad_norm=float("nan")), "max_grad_norm"), (ft.ClassifyConfig(device="tpu"), "device"),
    (ft.ClassifyConfig(label_column="text"), "label_column"),
])
def test_configs_name_the_bad_field(config: Any, field: str) -> None:
    with pytest.raises(ParameterError, match=rf"^{field}="):
        config.validate()


def test_unknown_settings_and_words_are_refused(demo: core.EmbeddingMatrix) -> None:
    with pytest.raises(ParameterError, match="window: not settings of ClassifyConfig"):
        ft.config_for("classify", window=3)
    with pytest.raises(ParameterError, match="objective='glove'"):
        ft.config_for("glove")
    corpus = ft.tokenize(demo, ["rates rose"])
    with pytest.raises(ParameterError, match=r"watch: '🦜' is not in the vocabulary"):
        ft.train_sgns(demo, corpus, ft.SGNSConfig(watch=("🦜",)))
    words = EmbeddingMatrix(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    with pytest.raises(ParameterError, match="no unknown token"):
        ft.tokenize(words, ["a b d"], unknown="unk")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="device='cuda'"):
            ft.choose_device("cuda")
    assert ft.choose_device("cpu").kind == "cpu"


def test_nan_loss_stops_reports_the_step_and_keeps_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(6, 8)).astype(np.float32)
    vecs[3] = np.nan
    m = EmbeddingMatrix(vecs, ["alpha", "beta", "gamma", "delta", "eps", "zeta"])
    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta gamma\n" * 30 + "delta alpha beta\n", encoding="utf-8")
    with pytest.raises(ft.TrainingDiverged, match=r"at step \d+ \(epoch 1\); .*nothing was written") as err:
        ft.finetune(m, corpus, ft.SGNSConfig(epochs=1, subsample=0, batch_size=16, watch_size=0), tmp_path / "out")
    assert err.value.step >= 1
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


@pytest.mark.parametrize("objective", ["sgns", "classify"])
def test_cancelled_run_leaves_no_folder(demo: core.EmbeddingMatrix, tmp_path: Path, objective: str) -> None:
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    data = ft.demo_corpus() if objective == "sgns" else ft.demo_labels()
    config = ft.config_for(objective, epochs=2)
    with pytest.raises(Cancelled):
        ft.finetune(demo, data, config, tmp_path / "runs" / "x", cancel=cancel)
    assert not (tmp_path / "runs" / "x").exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_output_paths_are_checked_before_training(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputExistsError):
        ft.finetune(demo, ft.demo_corpus(), ft.SGNSConfig(epochs=1), taken)
    with pytest.raises(ParameterError, match="not an earlier run"):
        ft.finetune(demo, ft.demo_corpus(), ft.SGNSConfig(epochs=1), taken, force=True)
    assert (taken / "notes.txt").read_text(encoding="utf-8") == "mine"
    with pytest.raises(ParameterError, match="source"):
        ft.finetune(demo, ft.demo_corpus(), ft.SGNSConfig(epochs=1), Path(demo.provenance.path).parent / "out")


def test_force_replaces_an_earlier_run(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    lines = tmp_path / "c.txt"
    lines.write_text("\n".join(_cooccurrence_lines(40)), encoding="utf-8")
    cfg = ft.SGNSConfig(epochs=1, watch_size=0)
    first = ft.finetune(demo, lines, cfg, tmp_path / "run")
    second = ft.finetune(demo, lines, ft.SGNSConfig(epochs=1, watch_size=0, seed=5), tmp_path / "run", force=True)
    assert second.card["seed"] == 5 and first.card["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "run"]


def test_demo_data_is_shipped_and_sized() -> None:
    lines = ft.demo_corpus().read_text(encoding="utf-8").splitlines()
    assert 200 <= len(lines) <= 1000 and any("定向降准" in line for line in lines)
    texts, labels, _ = ft.read_labelled(ft.demo_labels())
    assert 200 <= len(texts) <= 1000 and 3 <= len(set(labels)) <= 4


# -- CLI and charts ----------------------------------------------------------------------------------
def test_cli_finetune_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    out = tmp_path / "cli-run"
    assert main(["finetune", "demo", "--corpus", "demo", "--epochs", "1", "--watch", "bank,rates", "--out",
                 str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["out"] == str(out) and payload["objective"] == "sgns" and payload["tokens_seen"] > 0
    assert {"run_id", "device", "duration_s", "metrics", "unknown_tokens", "run_json"} <= set(payload)
    assert core.load(out).shape == (30522, 384)
    assert main(["finetune", "demo", "--corpus", "demo", "--epochs", "1", "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["finetune", "demo", "--corpus", "demo", "--objective", "classify", "--window", "3"]) == 2
    assert "applies to sgns only" in capsys.readouterr().err


def test_charts(sgns_run: ft.Run, classify_run: dict[str, Any]) -> None:
    card = sgns_run.card
    lc = charts.loss_chart(card["loss_curve"]["step"], card["loss_curve"]["loss"], card["loss_curve"]["epoch"],
                           smooth=5).to_dict()
    assert lc["layer"][0]["mark"]["type"] == "line" and lc["layer"][0]["encoding"]["y"]["field"] == "loss"
    assert lc["layer"][0]["encoding"]["color"]["field"] == "epoch"
    drawn = lc["datasets"][lc["data"]["name"]]
    assert [(r["step"], r["loss"]) for r in drawn] == list(zip(card["loss_curve"]["step"],
                                                               card["loss_curve"]["loss"], strict=True))
    assert lc["layer"][1]["transform"][0]["frame"] == [-4, 0]  # the moving mean over the last 5 steps
    g = charts.grad_norm_chart(card["grad_norm"]["step"], card["grad_norm"]["value"]).to_dict()
    assert g["mark"]["type"] == "line" and g["encoding"]["y"]["scale"]["type"] == "log"
    assert [r["norm"] for r in g["datasets"][g["data"]["name"]]] == [v for v in card["grad_norm"]["value"] if v > 0]
    clip = classify_run["run"].card["clipping"]
    g2 = charts.grad_norm_chart(clip["step"], clip["before"], max_norm=0.1).to_dict()
    assert g2["layer"][1]["mark"]["type"] == "rule"
    assert g2["datasets"][g2["layer"][1]["data"]["name"]] == [{"norm": 0.1}]  # the clipping threshold
    w = charts.watch_cosine_chart(card["watch"]["per_epoch"]).to_dict()
    assert w["encoding"]["color"]["field"] == "token" and w["encoding"]["x"]["field"] == "epoch"
    assert [(r["epoch"], r["token"], r["cosine"]) for r in w["datasets"][w["data"]["name"]]] == [
        (r["epoch"], r["token"], r["cosine_to_start"]) for r in card["watch"]["per_epoch"]]
    e = charts.epoch_metrics_chart(classify_run["run"].card["epochs"], ("loss", "val_loss")).to_dict()
    assert e["encoding"]["color"]["field"] == "metric"
    long = charts.loss_chart(list(range(20_000)), list(np.linspace(5, 1, 20_000))).to_dict()
    assert len(long["datasets"][next(iter(long["datasets"]))]) <= 5000


@pytest.mark.gpu
def test_sgns_on_cuda(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    lines = tmp_path / "c.txt"
    lines.write_text("\n".join(_cooccurrence_lines(400)), encoding="utf-8")
    run = ft.finetune(demo, lines, ft.SGNSConfig(epochs=4, device="cuda"), tmp_path / "gpu")
    card = run.card
    assert card["device"].startswith("cuda") and card["autocast"] == "bfloat16"
    assert card["epochs"][-1]["loss"] < card["epochs"][0]["loss"]
    after = _read_weights(run.path)
    present = np.zeros(len(demo), bool)
    present[np.unique(ft.tokenize(demo, _cooccurrence_lines(400)).ids)] = True
    assert np.array_equal(after[~present], np.asarray(demo.vectors)[~present])
    assert card["metrics"]["tokens_per_s"] > 0


def _word2vec_pairs(w_in: np.ndarray, w_out: np.ndarray, centres: np.ndarray, targets: np.ndarray,
                    lr: float) -> float:
    """word2vec.c's skip-gram negative-sampling update, pair by pair, in float64 (without its sigmoid table)."""
    loss = 0.0
    for c, row in zip(centres, targets, strict=True):
        neu1e = np.zeros(w_in.shape[1])
        for j, t in enumerate(row):
            if j > 0 and t == row[0]:
                continue
            label = 1.0 if j == 0 else 0.0
            f = float(w_in[c] @ w_out[t])
            loss += float(np.logaddexp(0.0, -f if label else f))
            g = (label - 1.0 / (1.0 + np.exp(-f))) * lr
            neu1e += g * w_out[t]
            w_out[t] += g * w_in[c]
        w_in[c] += neu1e
    return loss


@pytest.mark.parametrize("tied", [False, True])
def test_compiled_cpu_update_is_word2vecs(tied: bool) -> None:
    from core.finetune._sgns_kernel import sgns_pairs

    rng = np.random.default_rng(5)
    w_in = rng.normal(scale=0.3, size=(40, 16)).astype(np.float32)
    w_out = w_in if tied else rng.normal(scale=0.3, size=(40, 16)).astype(np.float32)
    centres = rng.integers(0, 40, 200).astype(np.int64)
    targets = rng.integers(0, 40, (200, 6)).astype(np.int64)
    targets[::7, 3] = targets[::7, 0]  # some negatives equal the positive context: skipped
    ref_in = w_in.astype(np.float64)
    ref_out = ref_in if tied else w_out.astype(np.float64)
    ref_loss = _word2vec_pairs(ref_in, ref_out, centres, targets, 0.05)
    loss, gsq = sgns_pairs(w_in, w_out, centres, targets, 0.05, np.empty(16, np.float32))
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    assert np.allclose(w_in, ref_in, atol=1e-4) and np.allclose(w_out, ref_out, atol=1e-4)
    assert gsq > 0 and math.isfinite(gsq)
