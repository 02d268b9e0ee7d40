"""``asr export``: a model file -> a self-contained ONNX file (fp32, or int8 weights) that
``asr transcribe``, ``asr evaluate`` and ``asr.load_model`` run with ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model file to ONNX (fp32 or int8 weights)")
    p.add_argument("model", help="model file (model.pt)")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output .onnx file (default: beside the model, model.onnx or "
                        "model.int8.onnx)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="int8: dynamically quantized weights (LSTM, linear layers, conv); GRU "
                        "and RNN layers stay float32")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from asr.errors import UserError
    from asr.fileio import check_output_dir
    from asr.inference import is_onnx, load_model
    from asr.onnx_export import export_onnx, float_ops

    model = Path(a.model)
    out = a.out or model.with_name(model.stem + (".int8" if a.quantize else "") + ".onnx")
    if is_onnx(model):
        raise UserError(f"{model} is already an ONNX model: export from the .pt model file")
    if out.is_dir():
        raise UserError(f"output {out} is a folder")
    check_output_dir(out.parent)  # fail before the export's work
    report = export_onnx(load_model(model), out, a.quantize)
    print(report.summary())
    left = float_ops(report.ops) if a.quantize else []
    if left:
        print(f"note: ONNX Runtime has no int8 kernel for {', '.join(left)}: those layers "
              "stay float32")
    return 0
