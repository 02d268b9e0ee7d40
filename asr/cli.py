"""The ``asr`` command: parse arguments, call the library, print. User errors -> one line, exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def _train(a: argparse.Namespace) -> int:
    from asr.config import load_config
    from asr.train import Trainer

    cfg = load_config(a.config, a.overrides)
    model = Trainer(cfg, a.train, a.dev, a.exp_dir, resume=a.resume, device=a.device).fit()
    print(f"model written to {model}")
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    from asr.evaluate import evaluate, format_summary
    from asr.inference import load_model

    rec = load_model(a.model, a.device)
    out = a.out or Path(a.model).parent / f"decode_{Path(a.manifest).stem}"
    summary = evaluate(rec, a.manifest, out)
    print(format_summary(summary))
    print(f"hypotheses and scores in {out}")
    return 0


def _transcribe(a: argparse.Namespace) -> int:
    from asr.inference import load_model

    rec = load_model(a.model, a.device)
    for path, text in zip(a.files, rec.transcribe(a.files)):
        print(f"{path}\t{text}" if a.with_names else text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="asr", description="Recurrent-network CTC speech recognition.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("train", help="train a model from manifests")
    t.add_argument("--config", type=Path, help="YAML config (defaults when omitted)")
    t.add_argument("--train", required=True, help="training manifest (JSONL)")
    t.add_argument("--dev", required=True, help="dev manifest (JSONL), for early stopping")
    t.add_argument("--exp-dir", required=True, type=Path, help="output folder")
    t.add_argument("--resume", action="store_true", help="continue from exp-dir's last checkpoint")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.epochs=10 model.cell=gru")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="decode a manifest and report WER/CER")
    e.add_argument("model", help="model file (model.pt)")
    e.add_argument("manifest", help="manifest (JSONL) with reference texts")
    e.add_argument("--out", type=Path, help="output folder (default: next to the model)")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=_evaluate)

    tr = sub.add_parser("transcribe", help="print the text of audio files, one line each")
    tr.add_argument("model", help="model file (model.pt)")
    tr.add_argument("files", nargs="+", help="audio files")
    tr.add_argument("--with-names", action="store_true", help="prefix each line with the file")
    tr.add_argument("--device", default="cpu")
    tr.set_defaults(func=_transcribe)

    from asr.lm.cli import add_parser as add_lm
    from asr.scoring.cli import add_parser as add_score
    from data_prep.cli import add_parser as add_prepare

    add_prepare(sub)
    add_score(sub)
    add_lm(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from asr.errors import UserError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except UserError as e:
        print(f"asr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
