"""The ``asr`` command: parse arguments, call the library, print. User errors -> one line, exit 2."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind: type, lo: float, strict: bool):
    """argparse type: a finite ``kind`` above ``lo`` (``strict``) or at least ``lo``."""
    want = f"{'>' if strict else '>='} {lo:g}"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} {want}, got {text!r}"
                                             ) from None
        if not math.isfinite(v) or v < lo or (strict and v == lo):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_INT, NONNEG_INT = _number(int, 0, True), _number(int, 0, False)
POSITIVE_FLOAT, NONNEG_FLOAT = _number(float, 0, True), _number(float, 0, False)


def _check_device(name: str, allow_auto: bool = False) -> None:
    """--device: cpu, cuda or cuda:N (and auto for training), and CUDA must be there."""
    import torch

    from asr.errors import UserError

    if allow_auto and name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: expected {'auto, ' if allow_auto else ''}cpu, "
                        "cuda or cuda:N")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= n:
            raise UserError(f"--device {name}: this machine has {n} CUDA device(s)")


def _train(a: argparse.Namespace) -> int:
    from asr.config import load_config
    from asr.manifest import check_output_dir
    from asr.train import Trainer

    _check_device(a.device, allow_auto=True)
    check_output_dir(a.exp_dir)
    cfg = load_config(a.config, a.overrides)
    model = Trainer(cfg, a.train, a.dev, a.exp_dir, resume=a.resume, device=a.device,
                    init=a.init).fit()
    print(f"model written to {model}")
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    from asr.evaluate import evaluate, format_summary
    from asr.inference import load_model

    _check_device(a.device)
    rec = load_model(a.model, a.device)
    out = a.out or Path(a.model).parent / f"decode_{Path(a.manifest).stem}"
    summary = evaluate(rec, a.manifest, out)
    print(format_summary(summary))
    print(f"hypotheses and scores in {out}")
    return 0


def _transcribe(a: argparse.Namespace) -> int:
    from asr.manifest import check_output_dir
    from asr.transcribe import run

    _check_device(a.device)
    if a.out is not None:
        check_output_dir(a.out)
    return run(a)


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
    t.add_argument("--init", type=Path, metavar="MODEL",
                   help="fine-tune a trained model file (its weights, tokens, CMVN, features "
                        "and model shape; ignored with --resume)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.epochs=10 model.cell=gru")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="decode a manifest and report WER/CER")
    e.add_argument("model", help="model file (model.pt)")
    e.add_argument("manifest", help="manifest (JSONL) with reference texts")
    e.add_argument("--out", type=Path, help="output folder (default: next to the model)")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=_evaluate)

    tr = sub.add_parser("transcribe", help="transcribe audio of any length to txt/json/srt/vtt")
    tr.add_argument("model", help="model file (model.pt)")
    tr.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="audio files, directories (searched recursively) or @list.txt")
    tr.add_argument("-o", "--out", type=Path, help="output folder (default: stdout)")
    tr.add_argument("--format", default="txt", choices=["txt", "json", "srt", "vtt"])
    tr.add_argument("--with-names", action="store_true", help="txt on stdout: prefix the file")
    tr.add_argument("--decoder", default="auto", choices=["auto", "greedy", "beam"],
                    help="auto: beam search with --lm/--lexicon or a decode.yaml beside the model")
    tr.add_argument("--segment", default="pause", choices=["pause", "fixed"],
                    help="long audio: cut at pauses into utterance-sized segments (pause), or "
                         "overlapping fixed windows joined at whole words (fixed)")
    tr.add_argument("--chunk-seconds", type=POSITIVE_FLOAT, default=30.0,
                    help="fixed: window length; pause: longest segment (30)")
    tr.add_argument("--overlap-seconds", type=NONNEG_FLOAT, default=5.0,
                    help="fixed: window overlap (5)")
    tr.add_argument("--pause-seconds", type=POSITIVE_FLOAT, default=0.25,
                    help="pause: shortest silence that ends a segment (0.25)")
    tr.add_argument("--pause-db", type=POSITIVE_FLOAT, default=16.0,
                    help="pause: frames this many dB above the noise floor are speech (16)")
    tr.add_argument("--batch-size", type=POSITIVE_INT, default=4,
                    help="chunks per forward pass (4)")
    tr.add_argument("--max-cue-seconds", type=POSITIVE_FLOAT, default=5.0,
                    help="srt/vtt cue length")
    tr.add_argument("--max-cue-chars", type=POSITIVE_INT, default=84,
                    help="srt/vtt cue characters")
    tr.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    tr.add_argument("--threads", type=NONNEG_INT, default=0,
                    help="torch CPU threads (0: default)")
    from asr.decode.tune import add_beam_arguments

    add_beam_arguments(tr)
    tr.set_defaults(func=_transcribe)

    from asr.decode.tune import add_parser as add_decode
    from asr.lm.cli import add_parser as add_lm
    from asr.scoring.cli import add_parser as add_score
    from data_prep.cli import add_parser as add_prepare

    add_prepare(sub)
    add_score(sub)
    add_lm(sub)
    add_decode(sub)
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
    except OSError as e:  # the system refused (disk full, permissions...): one line too
        where = f": {e.filename}" if e.filename else ""
        print(f"asr: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
