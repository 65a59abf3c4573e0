"""Health audit of an embedding matrix: twelve checks, each pass / warn / fail / n/a, with the tokens that prove it.

    >>> import core
    >>> from core.audit import audit, Policy
    >>> report = audit(core.load("demo"))                   # all-MiniLM-L6-v2, a healthy model
    >>> [(c.id, c.status) for c in report.checks][:3]
    [('numerical', 'pass'), ('duplicates', 'pass'), ('norm_outliers', 'warn')]
    >>> report.reaches("fail")                               # what `embedscope audit --fail-on fail` gates on
    False
    >>> report.undertrained.head(3)[["token", "score"]]      # lowest input-embedding norms first
    >>> report = audit(m, Policy.load("release.toml"))       # thresholds from a TOML policy file

The package: one module per check in ``core/audit/checks/`` declaring its id, title, unit, premise,
defaults and their rules, and the function that runs it (a :class:`~core.audit._spec.CheckSpec` found through
the registry, so adding a check is one new module); :mod:`core.audit.policy` (the TOML policy and its
validation); :mod:`core.audit.runner` (``audit()``); :mod:`core.audit.result` (:class:`Check`,
:class:`AuditReport`); shared scans and samples in ``_shared``. The HTML report lives in
:mod:`core.report.audit_html` and is re-exported here.

The checks, in order (:data:`CHECKS`):

``numerical``
    rows holding NaN or Inf, and all-zero rows (zero padding rows past the tokenizer are left out). Fail.
``duplicates``
    rows exactly equal to another (fail), and groups of rows with cosine above ``cosine`` (warn), found by
    an exact chunked search: a cheap upper bound on every pair's cosine from a 64-dimension projection plus
    the residual norms, then a compiled union-find that computes the exact cosine only for pairs not yet in
    one group, so a cluster of thousands of near-identical rows costs linear time and is one group.
``norm_outliers``
    rows whose L2 norm is far out in either tail: robust z-score (median / MAD) of the log norm.
``undertrained``
    after Land & Bartolo (2024), "Fishing for Magikarp": for input embeddings (untied or unknown) the score
    is the row's L2 norm; for tied embeddings and output (unembedding) tables, from the provenance
    (``tied``, ``tensor`` = ``lm_head.weight``/``output.weight``), it is the cosine distance to the mean of known-unused
    reference rows after removing the first principal component. Reference tokens come from the tokenizer
    alone: tokens that no encoding of their own decoded text reproduces, and special tokens the tokenizer
    files declare but give no role. The scorer never looks at token names. Candidates are the lowest
    ``fraction`` of scores; those that stand apart from the bulk (robust z below ``-z``) make the value.
``anisotropy``
    mean cosine over all pairs of distinct rows (exact, in closed form from the sum of the unit rows), the
    norm of the mean vector relative to the mean norm, and the distribution of cosines on a seeded sample.
``rogue_dimensions``
    after Timkey & van Schijndel (2021): each dimension's share of the expected cosine of random pairs,
    E[cos] = sum_i E[u_i v_i], and of the expected squared cosine (which also catches a centred dimension
    that decides every cosine's sign without moving the mean). A dimension over ``fail_above`` swamps
    every cosine.
``norm_frequency``
    Spearman correlation between row norm and word frequency (``wordfreq`` in ``language``), or the file's
    own order for word2vec/GloVe vocabularies, which are sorted by frequency.
``tokenizer``
    for model tokenizers: ids the tokenizer can produce that have no row (fail), special tokens without a
    row (fail), rows no token reaches (warn past ``max_extra_fraction``), config ``vocab_size`` vs rows.
``template_tokens``
    the special tokens the chat template emits on a small conversation (rendered in Jinja2's sandbox, see
    :mod:`core.template`): fail when one has an untrained row (zero, not finite, or far short of the bulk),
    warn when only the under-trained indicator flags one, or a declared special token appears in no
    encoding and has an untrained-looking row; n/a (with the Jinja error) when there is no template or it
    does not render.
``unreachable``
    tokens the tokenizer never produces from their own decoded text, each with what the encoding gives
    instead (warn past ``warn_above`` of the vocabulary).
``partial_utf8``
    byte-level tokens that are incomplete UTF-8 sequences, counted and kept apart from the under-trained
    candidates (informational).
``scripts``
    the share of under-trained candidates per Unicode script; warn when a script with ``min_tokens`` or more
    is ``warn_above`` times as short-changed as the whole vocabulary.

Statuses are made for release gates: a healthy trained model passes or warns (under-trained reserved
tokens and a tail of small norms are warnings); ``fail`` is for damage that hurts users; a seeded Gaussian
matrix passes everything. A matrix too small for a statistic gets "n/a" with the reason.

Each check rests on a premise (:data:`PREMISES`, shown beside it on the page, in ``embedscope audit --help``
and in the report) that holds for some kinds of model only. The audit first finds the model's family
(:func:`core._family.model_family`: "static" word vectors from a word2vec/GloVe file, an "encoder" or a
"decoder" from config.json's ``architectures``/``model_type``, else "unknown"; ``[model] family`` in a policy
overrides it), and a check whose premise does not hold says "n/a" with the reason and what it measured:
norm vs frequency applies to static vectors and encoders only, anisotropy and rogue dimensions not to
static vectors. On the default policy MiniLM (encoder), SmolLM2-135M (decoder) and gensim's word2vec test
vectors (static) all pass ``--fail-on fail``.
"""

from __future__ import annotations

from core.audit._spec import CheckSpec, PolicyValue, specs
from core.audit.categories import token_categories
from core.audit.policy import Policy, defaults
from core.audit.result import STATUSES, AuditReport, Check
from core.audit.runner import audit
from core.report.audit_html import render_html, write_html

#: Check ids, in report order.
CHECKS: tuple[str, ...] = tuple(s.id for s in specs())
#: What the page and the report call each check.
TITLES: dict[str, str] = {s.id: s.title for s in specs()}
#: What each check's value measures.
UNITS: dict[str, str] = {s.id: s.unit for s in specs()}
#: What each check assumes, and where that holds (the help text of the page, the CLI and the report).
PREMISES: dict[str, str] = {s.id: s.premise for s in specs()}
#: Default thresholds; a policy file overrides any of them, section by section (``[duplicates] cosine = 0.9995``).
DEFAULTS: dict[str, dict[str, PolicyValue]] = defaults()

__all__ = ["CHECKS", "DEFAULTS", "PREMISES", "STATUSES", "TITLES", "UNITS", "AuditReport", "Check", "CheckSpec",
           "Policy", "PolicyValue", "audit", "render_html", "token_categories", "write_html"]
