"""The chat template's special tokens: which ones a conversation in the model's own format really emits.

Fine-tuning on a chat format whose special tokens were never trained gives infinite gradient norms and garbage
(reported for the reserved tokens of Llama 3.1 and Mistral Nemo). This module finds the template (GGUF's
``tokenizer.chat_template``, ``tokenizer_config.json``'s ``chat_template``, or ``chat_template.jinja`` beside
the weights), renders it on a small conversation in Jinja2's immutable sandbox (never plain Jinja: a template is
code from a file), tokenises the result with the model's tokenizer, and reports the special tokens that the
encoding holds and the declared ones that never appear. The audit's ``template_tokens`` check scores them.

    >>> rep = template_tokens(core.load("path/to/llama3"))
    >>> [(t.token, t.count) for t in rep.emitted]
    [('<|begin_of_text|>', 1), ('<|start_header_id|>', 4), ...]
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.matrix import EmbeddingMatrix

#: The conversation every template is rendered on: a system prompt, two user turns and an assistant turn.
CONVERSATION: tuple[dict[str, str], ...] = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello! What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "Thanks. And of Japan?"},
)
#: A template whose output passes this many characters is stopped: a hostile template cannot fill memory.
MAX_RENDERED_CHARS = 1 << 20


@dataclass(frozen=True)
class TemplateToken:
    """A special token of the template: its row, and how often the rendered conversation holds it."""

    token: str
    id: int
    count: int


@dataclass(frozen=True)
class TemplateTokens:
    """What the chat template emits.

    Attributes:
        source: where the template came from ("tokenizer_config.json", "GGUF metadata", ...), or None.
        rendered: the conversation as the template writes it ("" when it could not be rendered).
        emitted: special tokens found in the encoding of ``rendered``, in order of first appearance.
        unused: declared special tokens that no encoding holds (not the template, not the tokenizer's own
            additions), with their rows.
        error: why the template could not be found or rendered; the check is then not applicable.
    """

    source: str | None
    rendered: str = ""
    emitted: tuple[TemplateToken, ...] = ()
    unused: tuple[TemplateToken, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _token_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return "" if value is None else str(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def find_template(m: EmbeddingMatrix) -> tuple[str | None, str | None, dict[str, Any]]:
    """(template text, where it came from, tokenizer config) for ``m``; the text is None when there is none."""
    extra = m.provenance.extra or {}
    if isinstance(extra.get("chat_template"), str):
        return str(extra["chat_template"]), "GGUF metadata", {}
    base = Path(m.provenance.path) if m.provenance.path else None
    folder = base if base is not None and base.is_dir() else (base.parent if base is not None else None)
    if folder is None:
        return None, None, {}
    cfg = _read_json(folder / "tokenizer_config.json")
    tpl = cfg.get("chat_template")
    if isinstance(tpl, list):  # named templates: the default one
        named = {str(t.get("name")): t.get("template") for t in tpl if isinstance(t, dict)}
        tpl = named.get("default") or next(iter(named.values()), None)
    if isinstance(tpl, str):
        return tpl, "tokenizer_config.json", cfg
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        try:
            return jinja.read_text(encoding="utf-8"), "chat_template.jinja", cfg
        except (OSError, UnicodeDecodeError):
            return None, None, cfg
    return None, None, cfg


def render(template: str, bos: str = "", eos: str = "",
           messages: tuple[dict[str, str], ...] = CONVERSATION) -> str:
    """The template rendered on ``messages`` with a generation prompt, in Jinja2's immutable sandbox.

    Raises:
        jinja2.TemplateError: the template does not parse, raises, or breaks the sandbox's rules.
    """
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(str(fmt))
    tpl = env.from_string(template)
    parts: list[str] = []
    size = 0
    for chunk in tpl.generate(messages=list(messages), add_generation_prompt=True, bos_token=bos,
                              eos_token=eos, tools=None, documents=None):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise TemplateError(f"the template wrote more than {MAX_RENDERED_CHARS:,} characters for a four-turn "
                                "conversation; stopped")
        parts.append(chunk)
    return "".join(parts)


def template_tokens(m: EmbeddingMatrix) -> TemplateTokens:
    """The special tokens the chat template of ``m`` emits, and the declared ones nothing emits."""
    from jinja2 import TemplateError

    template, source, cfg = find_template(m)
    if template is None:
        return TemplateTokens(None, error="no chat template (tokenizer_config.json, chat_template.jinja or GGUF "
                                          "metadata)")
    bos, eos = _token_text(cfg.get("bos_token")), _token_text(cfg.get("eos_token"))
    notes: list[str] = []
    try:
        try:
            text = render(template, bos, eos)
        except TemplateError:  # some templates refuse a system turn: the same talk without it
            text = render(template, bos, eos, CONVERSATION[1:])
            notes.append("the template refused a system message; rendered without it")
    except (TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as err:
        return TemplateTokens(source, error=f"the template could not be rendered: {type(err).__name__}: {err}")
    special = m.tokenizer.special_tokens
    counts: Counter[tuple[str, int]] = Counter()
    for p in m.tokenizer.encode(text, special=False):  # what the template itself writes
        if p.token in special and 0 <= p.id < len(m):
            counts[(p.token, p.id)] += 1
    emitted = tuple(TemplateToken(tok, i, n) for (tok, i), n in counts.items())
    # the tokenizer's own additions (BOS, CLS/SEP) are in every encoding too
    own = {p.token for p in m.tokenizer.encode("Hello", special=True) if p.token in special}
    seen = {t.token for t in emitted} | own
    declared = [(t, m.key_to_index[t]) for t in sorted(special) if t in m.key_to_index and t not in seen]
    unused = tuple(TemplateToken(t, i, 0) for t, i in declared)
    return TemplateTokens(source, text, emitted, unused, None, tuple(notes))
