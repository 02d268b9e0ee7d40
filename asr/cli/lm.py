"""``asr lm``: word n-gram LMs and the decoding files that go with an acoustic model.

- ``asr lm build``: text or manifests -> ARPA word n-gram LM. With
  ``--config`` the sentences are first normalised as that training config normalises its targets.
- ``asr lm lang``: a model file and the LM's text -> ``tokens.txt`` (the model's symbols) and,
  unless the model decodes lexicon-free (phones, words), ``lexicon.txt`` spelling every word of
  the text with the model's tokenizer.

Example:
    asr lm build data/train.jsonl extra.txt -o exp/lm/3gram.arpa --order 3
    asr lm build data/train.jsonl -o exp/lm/3gram.arpa --config conf/train.yaml \\
        --override text.case=lower --text-out exp/lm/text.txt
    asr lm lang exp/model.pt exp/lm/text.txt --out exp/lang
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.lm.lexicon import words_from_text, write_lang
from asr.lm.ngram import MAX_ORDER, SPECIAL, build_ngram_lm, sentences_from_lines
from asr.lm.text import lm_sentences


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lm`` with its ``build`` and ``lang`` subcommands."""
    lm = subparsers.add_parser("lm", help="word n-gram language models")
    sub = lm.add_subparsers(dest="lm_command", required=True)
    p = sub.add_parser(
        "build",
        help="build an ARPA n-gram LM (modified Kneser-Ney)",
        description="Build an interpolated modified Kneser-Ney word n-gram LM, as KenLM's lmplz.",
    )
    p.add_argument("text", nargs="+", metavar="TEXT",
                   help="plain text (one sentence a line) or JSONL manifest (its 'text' field)")
    p.add_argument("-o", "--output", required=True, help="ARPA file to write")
    p.add_argument("--order", type=int, default=3, help=f"n-gram order, 1..{MAX_ORDER} (default 3)")
    p.add_argument("--config", type=Path,
                   help="training config: normalise each sentence with its 'text' settings (as "
                   "the model's targets are), dropping sentences left empty")
    p.add_argument("--override", nargs="*", default=[], action="extend", metavar="KEY=VALUE",
                   help="overrides of --config, as for 'asr train' (e.g. text.case=lower)")
    p.add_argument("--text-out", help="also write the sentences the LM is built from, one a line")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "lang",
        help="write a model's tokens.txt and the lexicon spelling an LM's words",
        description="Write OUT/tokens.txt (the model's token symbols in id order) and, unless the "
        "model decodes lexicon-free (phone and word models: their tokens are the words), "
        "OUT/lexicon.txt spelling every word of TEXT with the model's tokenizer, for "
        "'asr evaluate --lexicon'. Words the model cannot spell are skipped.",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="model file (model.pt)")
    p.add_argument("text", nargs="+", metavar="TEXT",
                   help="the LM's text: plain text (one sentence a line) or JSONL manifest")
    p.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    p.set_defaults(func=run_lang)


def run(args: argparse.Namespace) -> int:
    """Build the LM from ``args``; returns the exit status."""
    if not 1 <= args.order <= MAX_ORDER:
        raise UserError(f"--order must be from 1 to {MAX_ORDER}, got {args.order}")
    if args.override and not args.config:
        raise UserError("--override needs --config")
    norm = None
    if args.config:
        from asr.config import load_config

        norm = load_config(args.config, args.override).text
    lines = lm_sentences(args.text, norm)
    if args.text_out:
        atomic_write_text(args.text_out, "".join(line + "\n" for line in lines))
    model = build_ngram_lm(sentences_from_lines(lines), args.order)
    model.write_arpa(args.output)
    sizes = ", ".join(f"{k + 1}-grams {len(p)}" for k, p in enumerate(model.probs))
    print(f"wrote {args.output}: {sizes}")
    for k, d in enumerate(model.discounts):
        note = " (fallback: count-of-counts degenerate)" if d.fallback else ""
        print(f"  order {k + 1}: D1={d.d1:.4f} D2={d.d2:.4f} D3+={d.d3:.4f}{note}")
    return 0


def run_lang(args: argparse.Namespace) -> int:
    """Write ``tokens.txt`` and (unless lexicon-free) ``lexicon.txt`` of ``args.model`` into
    ``args.out``; returns the exit status."""
    from asr.inference import load_tokenizer

    tok = load_tokenizer(args.model)
    words = [w for w in words_from_text(lm_sentences(args.text)) if w not in SPECIAL]
    written = write_lang(args.out, tok, words)
    if written is None:
        print(f"wrote {args.out}/tokens.txt ({len(tok.symbols)} tokens); no lexicon: {args.model} "
              "decodes lexicon-free (an LM over its own tokens)")
    else:
        print(f"{args.out}/lexicon.txt: {written[0]} words, {written[1]} not spellable by the model")
    return 0
