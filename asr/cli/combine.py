"""``asr combine``: several model files with the same tokens -> one combination file that every
command taking a model decodes as one model (posterior averaging, :mod:`asr.combine`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("combine", help="combine models with the same tokens (posterior averaging)")
    p.add_argument("models", nargs="+", metavar="MODEL", help="model files (.pt or .onnx), two or more")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="the combination file to write (.yaml); its decode.yaml, from "
                        "asr evaluate --tune, goes beside it")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from asr.combine import write_combination
    from asr.errors import UserError
    from asr.fileio import check_output_dir
    from asr.inference import is_combination

    if not is_combination(a.out):
        raise UserError(f"{a.out}: a combination file is named *.yaml")
    for m in a.models:
        if is_combination(m):
            raise UserError(f"{m}: give the model files, not a combination file")
    check_output_dir(a.out.parent)
    out = write_combination(a.models, a.out)
    print(f"{out}: {len(a.models)} models combined by posterior averaging")
    return 0
