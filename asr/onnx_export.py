"""Export a model to a self-contained ONNX file (fp32, or int8 weights), checked against PyTorch.

The network (:class:`asr.model.CTCModel`) goes through PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``), which turns each ``nn.LSTM``/``nn.GRU``/``nn.RNN``
into one ONNX ``LSTM``/``GRU``/``RNN`` op. The graph takes padded normalised features and their
lengths, ``feats (B, T, F)`` float32 and ``lens (B,)`` int64, with dynamic B and T, and returns
``log_probs (B, T', V)`` and ``out_lens (B,)``: the model's own padded-batch computation (the
backward direction reads each row reversed within its length), so no packed sequences are
needed. The trace is taken at a length that no subsampling factor (2-4) divides, so the frame
stacking's padding is traced as a (possibly zero) dynamic pad; every export is then checked on a
batch of other lengths (divisible ones included) against PyTorch.

``int8``: ONNX Runtime's ``quantize_dynamic`` with QInt8 weights. It covers the ``LSTM``,
``MatMul`` (linear layers, CTC head) and ``Conv`` ops; it has no int8 ``GRU`` or ``RNN``, so those
layers stay float32. The metadata (:func:`asr.onnx_runtime.encode_metadata`) is set again on the
quantized graph. Files are written atomically (temporary file beside the target, renamed).
"""

from __future__ import annotations

import copy
import inspect
import io
import logging
import os
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import torch

from asr.config import to_dict
from asr.errors import UserError
from asr.fileio import atomic_write_bytes, temp_file_beside
from asr.inference import Recognizer
from asr.model import CTCModel
from asr.onnx_runtime import INPUTS, OUTPUTS, OnnxNetwork, encode_metadata

OPSET = 17
QUANTIZE = ("int8",)
TRACE_FRAMES = 13  # not a multiple of any subsampling factor (2, 3, 4): see the module doc
FP32_TOLERANCE = 1e-4  # max |log-prob difference| to PyTorch on valid frames
# float op -> its dynamic-int8 form in ONNX Runtime (GRU and RNN have none)
INT8_OPS = {"LSTM": "DynamicQuantizeLSTM", "MatMul": "MatMulInteger", "Conv": "ConvInteger"}


class ExportReport(NamedTuple):
    path: str
    precision: str  # "fp32" or "int8"
    size: int  # bytes
    max_diff: float  # max |log-prob difference| to PyTorch on the check batch's valid frames
    ops: dict[str, int]  # weight-carrying op types of the written graph -> count

    def summary(self) -> str:
        ops = ", ".join(f"{n} {op}" for op, n in sorted(self.ops.items()))
        return (f"wrote {self.path} ({self.precision}, {self.size / 1e6:.2f} MB; ops: {ops}); "
                f"max |log-prob diff| to PyTorch on a check batch: {self.max_diff:.2g}")


def export_onnx(rec: Recognizer, path: str | os.PathLike, quantize: str | None = None
                ) -> ExportReport:
    """Write ``rec`` (a PyTorch model) as a self-contained ``.onnx`` file at ``path``.

    Raises:
        UserError: ``rec`` is itself an ONNX model, ``path`` is a folder or has no ``.onnx``
            suffix, or ``quantize`` is not None or "int8".
        RuntimeError: the fp32 graph does not reproduce PyTorch (a bug, not a user error).
    """
    import onnx

    p = Path(path)
    if not isinstance(rec.model, CTCModel):
        raise UserError(f"{rec.path} is already an ONNX model: export from the .pt model file")
    if quantize is not None and quantize not in QUANTIZE:
        raise UserError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if p.suffix.lower() != ".onnx":
        raise UserError(f"output {p} must end in .onnx (how asr recognises an ONNX model)")
    if p.is_dir():
        raise UserError(f"output {p} is a folder")
    net = copy.deepcopy(rec.model).cpu().float().eval()
    proto = onnx.load_from_string(_trace(net, rec.cfg.features.dim))
    meta = dict(config=to_dict(rec.cfg), tokenizer=rec.tokenizer.to_dict(), cmvn=rec.cmvn,
                longest_utterance=rec.longest_utterance)
    _set_metadata(proto, encode_metadata(**meta, precision="fp32"))
    with tempfile.TemporaryDirectory(prefix="asr-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(proto, fp32)
        diff = max_diff(net, OnnxNetwork(fp32, 1), rec.cfg.features.dim)
        if not diff <= FP32_TOLERANCE:
            raise RuntimeError(f"the exported graph differs from PyTorch by {diff:.3g} in "
                               f"log-probability (tolerance {FP32_TOLERANCE:g})")
        if quantize == "int8":
            proto = _quantize_int8(fp32, Path(tmp) / "int8.onnx")
            _set_metadata(proto, encode_metadata(**meta, precision="int8"))
            onnx.save(proto, fp32)
            diff = max_diff(net, OnnxNetwork(fp32, 1), rec.cfg.features.dim)
        data = proto.SerializeToString()
    _atomic_write_bytes(p, data)
    return ExportReport(str(p), quantize or "fp32", len(data), diff, weight_ops(proto))


def _trace(net: CTCModel, dim: int) -> bytes:
    x = torch.randn(2, TRACE_FRAMES, dim, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([TRACE_FRAMES, TRACE_FRAMES - 4])
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter warns that it is legacy, about Python booleans of traced values
        # (the frame-stacking pad, traced dynamic) and about GRU batch sizes (checked below).
        warnings.simplefilter("ignore")
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters \
            else {}  # torch < 2.5 has only the TorchScript-based exporter
        torch.onnx.export(net, (x, lens), buf, **legacy, opset_version=OPSET,
                          input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_axes={"feats": {0: "batch", 1: "frames"}, "lens": {0: "batch"},
                                        "log_probs": {0: "batch", 1: "out_frames"},
                                        "out_lens": {0: "batch"}})
    return buf.getvalue()


def check_batch(dim: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of random features, lengths 48 (a multiple of 2, 3 and 4), 37, 12 and 1."""
    lens = torch.tensor([48, 37, 12, 1])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lens), int(lens.max()), dim, generator=g)
    x = x * (torch.arange(x.shape[1])[None, :, None] < lens[:, None, None])  # zero padding
    return x, lens


def max_diff(net: CTCModel, onnx_net: OnnxNetwork, dim: int) -> float:
    """Max |log-prob difference| between the two networks on :func:`check_batch`'s valid
    output frames (inf when their output lengths differ)."""
    x, lens = check_batch(dim)
    with torch.no_grad():
        ref, ref_lens = net(x, lens)
    out, out_lens = onnx_net(x, lens)
    if not torch.equal(ref_lens, out_lens) or out.shape != ref.shape:
        return float("inf")
    return max(float((out[b, :n] - ref[b, :n]).abs().max()) for b, n in
               enumerate(ref_lens.tolist()) if n)


def _quantize_int8(src: Path, dst: Path):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    level = logging.root.manager.disable
    logging.disable(logging.WARNING)  # its advice to pre-process, shape-inference notes
    try:
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    finally:
        logging.disable(level)
    return onnx.load(dst)


def _set_metadata(proto, meta: dict[str, str]) -> None:
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    for k, v in [*keep, *meta.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "asr"


def weight_ops(proto) -> dict[str, int]:
    """Counts of the graph's weight-carrying ops, float and int8 forms."""
    names = set(INT8_OPS) | set(INT8_OPS.values()) | {"GRU", "RNN", "Gemm"}
    return dict(Counter(n.op_type for n in proto.graph.node if n.op_type in names))


def _atomic_write_bytes(p: Path, data: bytes) -> None:
    atomic_write_bytes(p, data)


def float_ops(ops: dict[str, int]) -> list[str]:
    """Weight-carrying op types of a graph (:func:`weight_ops`) that run in float32."""
    return sorted(op for op in ops if op not in INT8_OPS.values())
