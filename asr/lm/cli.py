"""``asr lm build``: text or manifests -> ARPA word n-gram LM (+ optional decoding lexicon).

Example:
    asr lm build data/train.jsonl extra.txt -o exp/lm/3gram.arpa --order 3 \\
        --lexicon-out exp/lm/lexicon.txt --tokens exp/model/tokens.txt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterator

from asr.errors import UserError
from asr.lm.lexicon import bpe_lexicon, char_lexicon, read_tokens, words_from_text, write_lexicon
from asr.lm.ngram import MAX_ORDER, SPECIAL, build_ngram_lm, sentences_from_lines


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lm`` with its ``build`` subcommand."""
    lm = subparsers.add_parser("lm", help="word n-gram language models")
    sub = lm.add_subparsers(dest="lm_command", required=True)
    p = sub.add_parser(
        "build",
        help="build an ARPA n-gram LM (modified Kneser-Ney) and optionally a lexicon",
        description="Build an interpolated modified Kneser-Ney word n-gram LM, as KenLM's lmplz.",
    )
    p.add_argument("text", nargs="+", metavar="TEXT",
                   help="plain text (one sentence a line) or JSONL manifest (its 'text' field)")
    p.add_argument("-o", "--output", required=True, help="ARPA file to write")
    p.add_argument("--order", type=int, default=3, help=f"n-gram order, 1..{MAX_ORDER} (default 3)")
    p.add_argument("--lexicon-out", help="also write a decoding lexicon for the LM's words")
    spell = p.add_mutually_exclusive_group()
    spell.add_argument("--tokens", help="character token list (one a line) for a spelling lexicon")
    spell.add_argument("--spm", help="sentencepiece .model for a BPE lexicon")
    p.add_argument("--boundary", default="|",
                   help="word-boundary token ending each character spelling (default '|')")
    p.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    """Build the LM (and lexicon) from ``args``; returns the exit status."""
    if not 1 <= args.order <= MAX_ORDER:
        raise UserError(f"--order must be from 1 to {MAX_ORDER}, got {args.order}")
    if args.lexicon_out and not (args.tokens or args.spm):
        raise UserError("--lexicon-out needs --tokens (characters) or --spm (sentencepiece model)")
    lines = [line for path in args.text for line in read_text_lines(path)]
    model = build_ngram_lm(sentences_from_lines(lines), args.order)
    model.write_arpa(args.output)
    sizes = ", ".join(f"{k + 1}-grams {len(p)}" for k, p in enumerate(model.probs))
    print(f"wrote {args.output}: {sizes}")
    for k, d in enumerate(model.discounts):
        note = " (fallback: count-of-counts degenerate)" if d.fallback else ""
        print(f"  order {k + 1}: D1={d.d1:.4f} D2={d.d2:.4f} D3+={d.d3:.4f}{note}")
    if args.lexicon_out:
        words = [w for w, _ in words_from_text(lines).most_common() if w not in SPECIAL]
        if args.tokens:
            lexicon, skipped = char_lexicon(words, read_tokens(args.tokens), args.boundary)
        else:
            lexicon, skipped = bpe_lexicon(words, args.spm)
        write_lexicon(args.lexicon_out, lexicon)
        print(f"wrote {args.lexicon_out}: {len(lexicon)} words, {skipped} skipped (not spellable)")
    return 0
