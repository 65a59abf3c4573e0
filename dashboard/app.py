"""Embedscope dashboard: ``python -m dashboard`` (the launcher; plain ``streamlit run dashboard/app.py`` works too).

The sidebar says which matrix is open (the bundled demo first); each page reads it from the session and
calls ``core``. Pages are listed here once; a page file that is not there yet is left out.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT.parent) not in sys.path:  # `streamlit run dashboard/app.py` from a source checkout
    sys.path.insert(0, str(ROOT.parent))

from core import access  # noqa: E402
from core.errors import EmbedscopeError  # noqa: E402
from core.loaders import FORMATS, UnknownFormatError, hub_disabled  # noqa: E402
from dashboard import auth, cached, memory, state  # noqa: E402

_LOG = logging.getLogger("embedscope.dashboard")
SOURCE_KINDS: dict[str, state.SourceKind] = {"Local path": "path", "Upload": "upload", "Hugging Face hub": "hub"}

#: (file, title, icon, section) of every page, in menu order.
PAGES = [
    ("views/overview.py", "Overview", ":material/dashboard:", "Inspect"),
    ("views/lookup.py", "Token lookup", ":material/search:", "Inspect"),
    ("views/neighbors.py", "Neighbours & analogies", ":material/hub:", "Similarity"),
    ("views/heatmap.py", "Similarity heatmap", ":material/grid_on:", "Similarity"),
    ("views/benchmarks.py", "Benchmarks", ":material/leaderboard:", "Similarity"),
    ("views/projection.py", "Projection", ":material/scatter_plot:", "Space"),
    ("views/export.py", "Export", ":material/download:", "Space"),
    ("views/health.py", "Health", ":material/health_and_safety:", "Audit"),
    ("views/gate.py", "Release check", ":material/verified:", "Audit"),
    ("views/finetune.py", "Fine-tune", ":material/model_training:", "Change"),
    ("views/compare.py", "Compare", ":material/compare_arrows:", "Change"),
]


def _sidebar() -> None:
    st.sidebar.title("Embedscope")
    specs = state.opened()
    current = state.current()
    # The widget follows state.current(), which pages may change (open a run, roll back); a pick in the
    # widget changes it through the callback, which runs before this script.
    st.session_state["sidebar.matrix"] = current if current in specs else specs[0]
    st.sidebar.selectbox("Matrix", specs, format_func=lambda s: s.title, key="sidebar.matrix",
                         on_change=lambda: state.set_current(st.session_state["sidebar.matrix"]))
    with st.sidebar.expander("Open another matrix", expanded=False):
        kinds = ["Local path", "Upload"] + ([] if hub_disabled() else ["Hugging Face hub"])
        kind = st.radio("From", kinds, key="open.kind", horizontal=True)
        value = ""
        if kind == "Local path":
            value = st.text_input("File or folder", key="open.path",
                                  help="a model folder, model.safetensors, pytorch_model.bin, .pdparams, "
                                       ".npy, word2vec/GloVe text or binary, or a Projector vectors.tsv")
        elif kind == "Upload":
            files = st.file_uploader("Files (weights + tokenizer, or vectors.tsv + metadata.tsv)",
                                     accept_multiple_files=True, key="open.upload")
            if files:
                from core.access import save_uploads

                try:
                    value = str(save_uploads(((f.name, f.getvalue()) for f in files), cached.upload_root()))
                except EmbedscopeError as err:
                    st.error(str(err))
                if len(files) == 1 and value:
                    value = str(Path(value) / files[0].name)
        else:
            value = st.text_input("Hub id", placeholder="sentence-transformers/all-MiniLM-L6-v2",
                                  key="open.hub", help="downloads only weights and tokenizer files")
        tensor = st.text_input("Tensor (optional)", key="open.tensor",
                               help="e.g. lm_head.weight for the output embedding of an untied model")
        vocab = st.text_input("Vocabulary (optional)", key="open.vocab",
                              help="vocab.txt / vocab.json / tokenizer folder; for TSV, the metadata.tsv")
        fmt = st.selectbox("Format", ["detect", *FORMATS], key="open.format",
                           help="detect reads the file's name and first bytes; name the format when it cannot")
        output = st.toggle("Output embedding (lm_head)", key="open.output",
                           help="a decoder's output table (Hugging Face lm_head, GGUF output.weight); a model that "
                                "ties it to the input table opens that one, and Overview says it is tied")
        if st.button("Open", key="open.go", disabled=not value, type="primary"):
            spec = state.SourceSpec(
                kind=SOURCE_KINDS[kind],
                value=value.strip(), tensor=tensor.strip() or None, vocab=vocab.strip() or None,
                label=(Path(value).name if kind != "Hugging Face hub" else value.strip())
                + (" (output)" if output else ""),
                format=None if fmt == "detect" else fmt, output=bool(output))
            try:
                cached.matrix(spec)
            except UnknownFormatError as err:
                st.error(str(err.advise("choose it under Format above")))
            except EmbedscopeError as err:
                st.error(str(err))
            else:
                state.set_current(spec)
                st.rerun()


def _server_folders() -> list[Path]:
    """Folders the server itself writes and may open besides the data roots: uploads, runs, the hub cache."""
    from core.finetune import runs_root

    folders = [cached.upload_root(), runs_root()]
    if not hub_disabled():
        from huggingface_hub import constants

        folders.append(Path(constants.HF_HUB_CACHE))
    return folders


def _guarded(step: Callable[[], None], where: str) -> None:
    """Run one part of the page; an error we did not foresee becomes a short message, the details a log line."""
    try:
        step()
    except EmbedscopeError as err:
        st.error(str(err))
    except Exception as err:  # the last line of defence: never a traceback on the page (st.rerun is no Exception)
        _LOG.exception("unexpected error in %s", where)
        st.error(f"Something went wrong in {where} ({type(err).__name__}); the details are in the server log.")


def main() -> None:
    st.set_page_config(page_title="Embedscope", page_icon=":material/blur_on:", layout="wide")
    auth.gate()
    # Every path opened from here on, by any page or source kind, must lie under the roots (core.access).
    with access.confined(_server_folders()):
        _guarded(_sidebar, "the sidebar")
        sections: dict[str, list[st.Page]] = {}
        for file, title, icon, section in PAGES:
            if (ROOT / file).is_file():
                sections.setdefault(section, []).append(st.Page(str(ROOT / file), title=title, icon=icon))
        page = st.navigation(sections)
        _guarded(page.run, f"the page {page.title!r}")
    # What this run freed (a table's copies, a chart's frames) goes back to the system, not kept by malloc.
    memory.give_back()


main()
