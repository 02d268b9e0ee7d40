"""``asr score REF HYP [--compare HYP_B]``: thin command line over :mod:`asr.scoring`.

Parses options, reads the files, calls the library, prints a short summary and optionally
writes report.md / report.html / summary.json. A user mistake prints one line, exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from asr.errors import UserError
from asr.scoring import ScoreResult, TextNorm, compare, score_texts, write_reports
from asr.scoring.io import read_transcripts, resolve_speakers
from asr.scoring.report import format_summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``score`` subcommand on an argparse subparsers object (sets ``func=run``)."""
    p = subparsers.add_parser(
        "score", help="WER/CER/SER with alignments, speaker table, CIs and significance tests",
        description="Score hypotheses against references. REF and HYP are each a JSONL "
                    "manifest (text field) or a Kaldi 'text' / plain 'id text' file "
                    "(auto-detected). Reference ids with no hypothesis are scored as empty; "
                    "hypothesis ids absent from REF are an error.")
    p.add_argument("ref", metavar="REF", help="reference transcripts")
    p.add_argument("hyp", metavar="HYP", help="hypotheses (system A)")
    p.add_argument("--compare", metavar="HYP_B",
                   help="second hypothesis set (system B): paired bootstrap and MAPSSWE tests")
    p.add_argument("--utt2spk", metavar="FILE",
                   help="Kaldi utt2spk file; default: the REF manifest's speaker field, else "
                        "the id prefix before the first '-'")
    case = p.add_mutually_exclusive_group()
    case.add_argument("--lowercase", dest="lowercase", action="store_true",
                      help="lower-case both sides before scoring")
    case.add_argument("--keep-case", dest="lowercase", action="store_false",
                      help="score case-sensitively (default)")
    p.set_defaults(lowercase=False)
    p.add_argument("--strip-punct", action="store_true",
                   help="replace punctuation and symbols (Unicode P*, S*) by spaces (keeps "
                        "apostrophes between letters)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for confidence intervals (0: none; default 1000)")
    p.add_argument("--bootstrap-unit", choices=("utterance", "speaker"), default="utterance",
                   help="resample utterances (default) or whole speakers")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of the comparison verdicts (default 0.05)")
    p.add_argument("--top", type=int, default=10, help="confusions listed per type (default 10)")
    p.add_argument("--out-dir", metavar="DIR",
                   help="write report.md, report.html and summary.json here")
    p.set_defaults(func=run)


def _check_options(args: argparse.Namespace) -> None:
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.compare and args.bootstrap < 1:
        raise UserError("--compare needs --bootstrap >= 1 for the paired bootstrap test")
    if not 0.0 < args.confidence < 1.0:
        raise UserError(f"--confidence must be between 0 and 1, got {args.confidence}")
    if not 0.0 < args.alpha < 1.0:
        raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.top < 0:
        raise UserError(f"--top must be >= 0, got {args.top}")


def _warn_missing(result: ScoreResult, path: str) -> None:
    missing = result.missing_hyp_ids
    if missing:
        print(f"warning: {len(missing)} reference utterance(s) have no hypothesis in {path}; "
              f"scored as empty (e.g. '{missing[0]}')", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    _check_options(args)
    ref = read_transcripts(args.ref)
    speakers, source = resolve_speakers(ref.texts, ref, args.utt2spk)
    opts = dict(speakers=speakers, speaker_source=source,
                normalization=TextNorm(case="lower" if args.lowercase else "keep",
                                       strip_punct=args.strip_punct, nfkc=False),
                n_bootstrap=args.bootstrap, bootstrap_unit=args.bootstrap_unit,
                confidence=args.confidence, seed=args.seed, ref_name=args.ref)
    result = score_texts(ref.texts, read_transcripts(args.hyp).texts, hyp_name=args.hyp, **opts)
    _warn_missing(result, args.hyp)
    comparison = None
    if args.compare:
        result_b = score_texts(ref.texts, read_transcripts(args.compare).texts,
                               hyp_name=args.compare, **opts)
        _warn_missing(result_b, args.compare)
        comparison = compare(result, result_b, n_bootstrap=args.bootstrap,
                             bootstrap_unit=args.bootstrap_unit, confidence=args.confidence,
                             seed=args.seed, alpha=args.alpha)
    print(format_summary(result, comparison))
    if args.out_dir:
        paths = write_reports(result, args.out_dir, comparison, top=args.top)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``asr score``; returns the exit code (2 for a user error, printed as one line)."""
    try:
        return _run(args)
    except UserError as e:
        print(f"asr score: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m asr.cli.score REF HYP ...``."""
    parser = argparse.ArgumentParser(prog="asr")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["score", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
