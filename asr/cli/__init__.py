"""The ``asr`` command: parse arguments, call the library, print. User errors -> one line, exit 2.

Each subcommand lives in its own module with the same two functions: ``add_parser(sub)``
registers its arguments (and ``func=run``), and ``run(args)`` turns the argparse object into the
library's typed configs, calls the library and returns the exit code. Nothing below this package
sees an ``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
import logging
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from asr.cli import combine, evaluate, export, lm, score, shard, stream, train, transcribe
    from data_prep.cli import add_parser as add_prepare

    p = _Parser(prog="asr", description="Recurrent-network CTC speech recognition.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (train.add_parser, evaluate.add_parser, evaluate.add_decode_parser,
                transcribe.add_parser, stream.add_parser, export.add_parser, add_prepare,
                score.add_parser, lm.add_parser, shard.add_parser, combine.add_parser):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from asr.errors import UserError
    from asr.interrupt import guard

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        with guard():
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
