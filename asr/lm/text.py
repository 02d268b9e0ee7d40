"""LM training text: sentences from plain text files (one a line) or JSONL manifests (their
``text`` field), optionally normalised as a training config normalises its targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from asr.errors import UserError


def is_jsonl(path: Path) -> bool:
    """True for a ``.jsonl`` file or one whose first non-blank character is ``{``."""
    if path.suffix == ".jsonl":
        return True
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def read_text_lines(path: str) -> Iterator[str]:
    """Sentences of one TEXT file: its lines, or the ``text`` field of each JSONL line."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"text file not found: {p}")
    jsonl = is_jsonl(p)
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not jsonl:
                yield line
            elif line.strip():
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError):
                    raise UserError(f"{p}:{n}: not a JSON object") from None
                if not isinstance(text, str):
                    raise UserError(f"{p}:{n}: no string 'text' field")
                yield text


def lm_sentences(paths: Iterable[str], norm=None) -> list[str]:
    """Every sentence of ``paths`` (:func:`read_text_lines`), normalised by ``norm`` (a
    :class:`~asr.text.TextNorm`, or None), whitespace collapsed, empty ones dropped."""
    lines = [line for path in paths for line in read_text_lines(path)]
    if norm is not None:
        lines = [norm(line) for line in lines]
    return [" ".join(line.split()) for line in lines if line.strip()]
