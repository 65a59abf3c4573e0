"""Fine-tune: domain skip-gram or a small classifier on the current matrix, live progress, earlier runs."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import charts
from core import finetune as ft
from core.access import check_allowed, save_uploads
from core.errors import Cancelled
from dashboard import cached, longrun, state
from dashboard.ui import current_matrix, shown_errors

OBJECTIVES = {"sgns": "Domain skip-gram (SGNS) on raw text", "classify": "Classifier on labelled texts"}
DATA_KINDS = ["Bundled demo", "Path", "Upload"]
CHOICES = {"context": ("copy", "random", "tied"), "unknown": ("skip", "unk"), "device": ("auto", "cuda", "mps", "cpu")}
# Shown in their own widgets (data section), not among the hyperparameters.
DATA_FIELDS = {"text_column", "label_column", "watch"}
COMPARE_PAGE = Path(__file__).resolve().parent / "compare.py"


def _config_widgets(objective: str, cls: type) -> dict[str, Any]:
    """One widget per hyperparameter, with its default and one-line help; returns the values."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    fields = [f for f in dataclasses.fields(cls) if f.name not in DATA_FIELDS]
    cols = st.columns(3)
    for i, f in enumerate(fields):
        col = cols[i % 3]
        key = f"finetune.{objective}.{f.name}"
        help_text = str(f.metadata.get("help", ""))
        default: Any = f.default
        tp = hints[f.name]
        if f.name in CHOICES:
            opts = CHOICES[f.name]
            values[f.name] = col.selectbox(f.name, opts, index=opts.index(default), key=key, help=help_text)
        elif tp is bool:
            values[f.name] = col.checkbox(f.name, value=bool(default), key=key, help=help_text)
        elif tp is int:
            values[f.name] = int(col.number_input(f.name, value=int(default), step=1, key=key, help=help_text))
        elif tp is float:
            values[f.name] = float(col.number_input(f.name, value=float(default), format="%g",
                                                    step=float(default) / 10 or 0.001, key=key, help=help_text))
    return values


def _source_spec(card: ft.RunCard) -> state.SourceSpec:
    """How to reopen a run's source: the demo when it was the demo, else its path and tensor."""
    path = str(card.source.path or "")
    try:
        from core import demo_path

        demo = demo_path().resolve()
        if path and (Path(path).resolve() == demo or demo in Path(path).resolve().parents):
            return state.DEMO
    except Exception:  # no demo package installed: fall through to the path
        pass
    return state.SourceSpec("path", path, tensor=card.source.tensor, label=Path(path).parent.name or path)


def _run_spec(run: ft.Run) -> state.SourceSpec:
    return state.SourceSpec("run", str(run.path), label=f"run {run.run_id}")


def _run_buttons(run: ft.Run, where: str) -> None:
    """Open the run's matrix, go back to its source, or compare the two."""
    a, b, c = st.columns(3)
    if a.button("Open the fine-tuned matrix", key=f"finetune.{where}.open", type="primary"):
        state.set_current(_run_spec(run))
        st.rerun()
    if b.button("Roll back to the source", key=f"finetune.{where}.source",
                help="make the matrix this run started from the current one"):
        state.set_current(_source_spec(run.card))
        st.rerun()
    if c.button("Compare with the original", key=f"finetune.{where}.compare",
                help="open the Compare page with the source and this run's output chosen"):
        state.COMPARE_PRESELECT.set((_source_spec(run.card), _run_spec(run)))
        if COMPARE_PAGE.is_file():
            st.switch_page("views/compare.py")
        st.info("The Compare page is not installed; the pair is remembered for when it is.")
    if st.button("Release check against the original", key=f"finetune.{where}.gate",
                 help="open the Release check with this run's output as the candidate and its source as the "
                      "baseline"):
        state.GATE_PRESELECT.set((_source_spec(run.card), _run_spec(run)))
        st.session_state.pop("gate.new", None)
        st.session_state.pop("gate.baseline", None)
        st.switch_page("views/gate.py")


def _show_run(run: ft.Run, where: str) -> None:
    """Settings, metrics and charts of a finished run."""
    card = run.card
    mt = card.metrics
    cols = st.columns(4)
    cols[0].metric("objective", card.objective)
    cols[1].metric("device", card.device)
    cols[2].metric("tokens seen", f"{card.tokens_seen:,}")
    cols[3].metric("unknown pieces", f"{card.unknown_tokens:,}")
    if card.objective == "classify":
        d1, d2 = st.columns(2)
        d1.metric("frozen baseline macro-F1", f"{mt.get('baseline_macro_f1', 0):.4f}")
        d2.metric("fine-tuned macro-F1", f"{mt.get('finetuned_macro_f1', 0):.4f}",
                  delta=f"{mt.get('finetuned_macro_f1', 0) - mt.get('baseline_macro_f1', 0):+.4f}")
    lc, gc = card.curves.get("loss_curve") or {}, card.curves.get("grad_norm") or {}
    left, right = st.columns(2)
    if lc.get("step"):
        left.altair_chart(charts.loss_chart(lc["step"], lc["loss"], lc.get("epoch"), smooth=10), width="stretch")
    if gc.get("step"):
        clip = (card.curves.get("clipping") or {}).get("max_grad_norm")
        right.altair_chart(charts.grad_norm_chart(gc["step"], gc["value"], clip), width="stretch")
    watch = card.watch.get("per_epoch") or []
    if watch:
        st.altair_chart(charts.watch_cosine_chart(watch), width="stretch")
        last = max(int(r["epoch"]) for r in watch)
        before = {r["token"]: r["neighbours"] for r in watch if r["epoch"] == 0}
        st.dataframe(pd.DataFrame([{"word": r["token"], "cosine to start": r["cosine_to_start"],
                                    "neighbours before": ", ".join(n[0] for n in before.get(r["token"], [])),
                                    f"neighbours after epoch {last}": ", ".join(n[0] for n in r["neighbours"])}
                                   for r in watch if r["epoch"] == last]), hide_index=True, width="stretch")
    epochs = card.epochs
    if epochs and card.objective == "classify":
        st.altair_chart(charts.epoch_metrics_chart(epochs, ("loss", "val_loss", "val_macro_f1")), width="stretch")
        b, f = st.columns(2)
        b.caption("Frozen baseline (validation)")
        b.code(mt.get("baseline", {}).get("text", ""), language=None)
        f.caption("Fine-tuned (validation)")
        f.code(mt.get("finetuned", {}).get("text", ""), language=None)
    with st.expander("Settings, data and the whole run card"):
        st.json({"config": card.config, "corpus": card.corpus, "source": card.source.to_json(),
                 "output": card.output.to_json()}, expanded=False)
        st.download_button("run.json", json.dumps(card.to_json(), indent=1, ensure_ascii=False), "run.json",
                           "application/json", key=f"finetune.{where}.card")
    _run_buttons(run, where)


m = current_matrix()
spec = state.current()
root = ft.runs_root()
st.title("Fine-tune")
st.caption("Continue skip-gram training on a domain corpus, or train the embedding inside a small classifier. "
           "Only rows of tokens in your data change; the result is a new folder under "
           f"`{root}` that opens like any other matrix.")

new_tab, runs_tab = st.tabs(["New run", "Earlier runs"])
with new_tab:
    objective = st.radio("Objective", list(OBJECTIVES), format_func=OBJECTIVES.__getitem__, horizontal=True,
                         key="finetune.objective")
    cls = ft.SGNSConfig if objective == "sgns" else ft.ClassifyConfig
    st.subheader("Data")
    kind = st.radio("From", DATA_KINDS, horizontal=True, key="finetune.data_kind")
    data_path: str | None = None
    trusted = False
    if kind == "Bundled demo":
        data_path = str(ft.demo_corpus() if objective == "sgns" else ft.demo_labels())
        trusted = True
        st.caption(("A finance-news corpus, a few hundred lines (English, and some Chinese lines that this "
                    "tokenizer mostly lacks)." if objective == "sgns" else
                    "320 finance headlines labelled positive / negative / neutral / policy.") + f" `{data_path}`")
    elif kind == "Path":
        typed = st.text_input("File", key="finetune.path",
                              help="a text file with one document a line, or a .jsonl/.csv/.tsv file")
        data_path = typed.strip() or None
    else:
        up = st.file_uploader("Corpus file", type=["txt", "jsonl", "csv", "tsv"], key="finetune.upload")
        if up is not None:
            with shown_errors(stop=False):
                data_path = str(save_uploads([(up.name, up.getvalue())], cached.upload_root()) / up.name)
                trusted = True
    table_like = bool(data_path) and Path(str(data_path)).suffix.lower() in (".csv", ".tsv", ".jsonl")
    c1, c2, c3 = st.columns(3)
    text_column = c1.text_input("Text column", value="text", key="finetune.text_column", disabled=not table_like,
                                help="column (or JSON key) holding the text")
    label_column = c2.text_input("Label column", value="label", key="finetune.label_column",
                                 disabled=objective != "classify", help="column (or JSON key) holding the label")
    watch_text = c3.text_input("Watch words", key="finetune.watch", placeholder="e.g. bank, cut, yields",
                               help="comma-separated words whose drift and neighbours are tracked per epoch "
                                    "(default: the data's most frequent words)")
    with st.expander("Hyperparameters", expanded=False):
        values = _config_widgets(objective, cls)
    watch = tuple(w.strip() for w in watch_text.split(",") if w.strip())
    settings = {**values, "watch": watch}
    if objective == "classify":
        settings.update(text_column=text_column.strip() or "text", label_column=label_column.strip() or "label")
    elif table_like:
        settings["text_column"] = text_column.strip() or "text"

    st.subheader("Output")
    o1, o2 = st.columns([3, 1])
    auto = state.FINETUNE_AUTO_NAME.get()
    if ("finetune.name" not in st.session_state or state.FINETUNE_FRESH_NAME.pop()
            or (st.session_state["finetune.name"] == auto and not auto.startswith(objective + "-"))):
        auto = ft.new_run_id(objective)  # a fresh default name, until the user types one
        state.FINETUNE_AUTO_NAME.set(auto)
        st.session_state["finetune.name"] = auto
    name = o1.text_input("Run name", key="finetune.name", help=f"a new folder of this name is written under {root}")
    force = o2.checkbox("Replace an earlier run of that name", key="finetune.force")
    out = root / ft.safe_name(name)
    offered = ft.processes_offered(str(values.get("device", "auto")))
    processes = 1
    if offered > 1 and m.provenance.path:
        processes = int(st.number_input(
            "processes", min_value=1, max_value=offered, value=1, step=1, key="finetune.processes",
            help="train on several processes (torch.distributed: one per GPU, or per CPU core); each takes a "
                 "share of the data"))

    start = st.button("Start", key="finetune.start", type="primary", disabled=not data_path)
    if longrun.was_cancelled("finetune") and not start:
        st.warning("Cancelled; nothing was written.")
    if start and data_path:
        try:
            with shown_errors(stop=False), longrun.panel("finetune", "Training") as progress:
                live = st.empty()
                points: list[tuple[int, float]] = []

                def _on_update(upd: ft.TrainingUpdate) -> None:
                    points.extend(upd.losses)
                    progress(upd.fraction, upd.message)
                    if points:
                        steps, losses = zip(*points, strict=True)
                        live.altair_chart(charts.loss_chart(list(steps), list(losses), title="Training loss (live)"),
                                          width="stretch")

                config = ft.config_for(objective, **settings)
                config.validate()
                if not trusted:
                    data_path = str(check_allowed(data_path))
                if processes > 1:
                    # the ranks open the matrix themselves, from where this one came
                    run = ft.load_run(ft.launch(str(m.provenance.path), data_path, config, out, processes,
                                                tensor=m.provenance.tensor, force=force, progress=progress))
                else:
                    run = ft.finetune(m, data_path, config, out, force=force, progress=progress,
                                      on_update=_on_update)
                state.FINETUNE_LAST.set(str(run.path))
                state.FINETUNE_FRESH_NAME.set(True)
                st.success(f"Wrote {run.path}: done in {run.card.duration_s:.1f} s")
        except Cancelled:
            st.warning("Cancelled; nothing was written.")
    last = state.FINETUNE_LAST.get()
    if last:
        with shown_errors(stop=False):
            shown = ft.load_run(last)
            st.divider()
            st.subheader(f"Last run: {shown.run_id}")
            _show_run(shown, "last")

with runs_tab:
    runs = ft.list_runs(root)
    if not runs:
        st.info(f"No runs yet in `{root}` (set EMBEDSCOPE_RUNS to look elsewhere).")
    else:
        st.dataframe(pd.DataFrame([r.summary() for r in runs]), hide_index=True, width="stretch")
        ids = [r.run_id for r in runs]
        pick = st.selectbox("Run", ids, key="finetune.pick")
        chosen = runs[ids.index(pick)]
        st.caption(f"`{chosen.path}` · from `{chosen.card.source.path or ''}` · {chosen.card.created}")
        _show_run(chosen, "pick")
