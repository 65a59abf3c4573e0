"""Overview: where the matrix came from, its statistics, its row norms and dimensions."""

from __future__ import annotations

import collections

import pandas as pd
import streamlit as st

from core import charts
from core.loaders import ROW_NUMBERS
from dashboard import cached
from dashboard.ui import current_matrix, metric_range

m = current_matrix()
p = m.provenance
st.title("Overview")
st.caption(f"{m.shape[0]:,} tokens × {m.dim} dimensions · {p.format}"
           + (" · tokens are row numbers (no vocabulary was found or given)" if p.vocab_source == ROW_NUMBERS else ""))

left, right = st.columns([3, 2])
with left:
    st.subheader("Where it came from")
    facts = {
        "format": p.format, "file": p.path, "tensor": p.tensor or "—", "dtype in file": p.dtype,
        "vocabulary size": f"{len(m):,}", "dimensions": m.dim, "bytes read": f"{p.file_bytes:,}",
        "vocabulary from": p.vocab_source or "—", "tokenizer": m.tokenizer.scheme,
        "tied input/output": {True: "yes", False: "no", None: "—"}[p.tied], "fingerprint": m.fingerprint,
    }
    st.table(pd.DataFrame({"": list(facts.values())}, index=list(facts)).astype(str))
    for note in p.notes:
        st.info(note)
with right:
    s = cached.summary(m)
    st.subheader("Statistics")
    a, b = st.columns(2)
    a.metric("mean", f"{s.mean:+.5f}")
    b.metric("std", f"{s.std:.5f}")
    a.metric("min", f"{s.min:+.4f}")
    b.metric("max", f"{s.max:+.4f}")
    a.metric("median row norm", f"{s.norm_median:.4f}")
    b.metric("norm range", metric_range(s.norm_min, s.norm_max), help=f"{s.norm_min!r} – {s.norm_max!r}")
    if s.nonfinite:
        st.error(f"{s.nonfinite:,} values are NaN or Inf; the Health page lists the rows.")
    kinds = collections.Counter(m.kinds).most_common()
    st.dataframe(pd.DataFrame({"kind": [k for k, _ in kinds], "tokens": [n for _, n in kinds]}),
                 hide_index=True, width="stretch")

st.altair_chart(charts.norm_histogram(m.norms), width="stretch")
mean, std = cached.per_dimension(m)
st.altair_chart(charts.dimension_profile(mean, std), width="stretch")
