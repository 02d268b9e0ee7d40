"""The acoustic network of an exported ``.onnx`` model file, run by ONNX Runtime; its metadata.

``asr export`` (:mod:`asr.onnx_export`) writes the network's graph with dynamic batch and time
axes, and everything else a :class:`~asr.inference.Recognizer` is built from (experiment config,
tokenizer, CMVN statistics, longest training utterance) as JSON strings in the file's
``metadata_props``, so the file is self-contained. :class:`OnnxNetwork` is called like
:class:`asr.model.CTCModel`: ``(feats (B, T, F), lens (B,)) -> (log_probs (B, T', V), out_lens
(B,))``, so the one forward path (``Recognizer.forward``) runs it unchanged.

Loading needs only ``onnxruntime`` (not ``onnx``), imported when a file is opened.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.errors import UserError
from asr.tokenizer import valid_tokenizer_dict

ONNX_FORMAT = "asr-onnx"  # metadata key "asr_format"
ONNX_VERSION = 1  # metadata key "asr_version"
INPUTS = ("feats", "lens")  # (B, T, F) float32, (B,) int64
OUTPUTS = ("log_probs", "out_lens")  # (B, T', V) float32, (B,) int64
META_PARTS = ("config", "tokenizer", "cmvn", "longest_utterance", "precision")

_BYTES = "__bytes_base64__"  # JSON has no bytes (a BPE tokenizer's sentencepiece model)


def _encode(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray)):
        return {_BYTES: base64.b64encode(bytes(obj)).decode("ascii")}
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _decode(d: dict) -> Any:
    return base64.b64decode(d[_BYTES]) if set(d) == {_BYTES} else d


def encode_metadata(config: dict, tokenizer: dict, cmvn: dict[str, torch.Tensor],
                    longest_utterance: float | None, precision: str) -> dict[str, str]:
    """The ``metadata_props`` of an exported model: key -> JSON string."""
    parts = {"config": config, "tokenizer": tokenizer,
             "cmvn": {k: v.detach().cpu().float().tolist() for k, v in cmvn.items()},
             "longest_utterance": longest_utterance, "precision": precision}
    meta = {k: json.dumps(v, default=_encode, ensure_ascii=False) for k, v in parts.items()}
    return {"asr_format": ONNX_FORMAT, "asr_version": str(ONNX_VERSION), **meta}


def decode_metadata(meta: dict[str, str], path: str | os.PathLike) -> dict[str, Any]:
    """The parts :func:`encode_metadata` wrote, checked: one line when the file is not ours."""
    if meta.get("asr_format") != ONNX_FORMAT:
        raise UserError(f"{path} is an ONNX model but not one written by asr export "
                        "(no asr metadata)")
    if meta.get("asr_version") != str(ONNX_VERSION):
        shown = meta.get("asr_version", "unknown")
        raise UserError(f"{path} has asr ONNX format version {shown[:20]}; this asr reads "
                        f"version {ONNX_VERSION}")
    try:
        parts = {k: json.loads(meta[k], object_hook=_decode) for k in META_PARTS}
        cmvn = {k: torch.tensor(v, dtype=torch.float32) for k, v in parts["cmvn"].items()}
        if not {"mean", "std"} <= set(cmvn) or not isinstance(parts["config"], dict) \
                or not valid_tokenizer_dict(parts["tokenizer"]):
            raise ValueError
    except (KeyError, ValueError, TypeError, AttributeError):
        raise UserError(f"{path}: its asr metadata is incomplete or damaged") from None
    longest = parts["longest_utterance"]
    parts["longest_utterance"] = float(longest) if isinstance(longest, (int, float)) else None
    parts["cmvn"] = cmvn
    return parts


def _session(path: Path, threads: int, what: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: no graph-optimiser chatter on stderr
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own types (InvalidProtobuf, Fail...)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a readable ONNX {what} ({reason})") from None


class OnnxNetwork:
    """An ONNX Runtime session with the call of :class:`asr.model.CTCModel` (CPU only).

    Args:
        path: the ``.onnx`` file. threads: ONNX Runtime's intra-op threads; None follows
            ``torch.get_num_threads()`` at load time (``asr transcribe --threads`` sets that).

    Attributes:
        metadata: the decoded parts (config dict, tokenizer dict, cmvn tensors,
            longest_utterance, precision "fp32" or "int8").
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        p = Path(path)
        if p.is_dir():
            raise UserError(f"model file {p} is a folder, not a file")
        if not p.is_file():
            raise UserError(f"model file not found: {p}")
        self.path = p
        self.threads = int(threads or torch.get_num_threads())
        self.session = _session(p, self.threads, "model file")
        names = ([i.name for i in self.session.get_inputs()],
                 [o.name for o in self.session.get_outputs()])
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = decode_metadata(meta, p)
        if names != (list(INPUTS), list(OUTPUTS)):
            raise UserError(f"{p}: its graph has inputs {names[0]} and outputs {names[1]}; "
                            f"an asr model has {list(INPUTS)} and {list(OUTPUTS)}")

    def eval(self) -> "OnnxNetwork":  # the calls Recognizer makes on a torch network
        return self

    def to(self, device) -> "OnnxNetwork":
        if torch.device(device).type != "cpu":
            raise UserError(f"{self.path}: an ONNX model runs on the CPU (ONNX Runtime); "
                            "use --device cpu")
        return self

    def state_dict(self):
        raise UserError(f"{self.path} is an exported ONNX model: it has no PyTorch weights "
                        "(export, save and fine-tune from the .pt model file)")

    def __call__(self, feats: torch.Tensor, lens: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.ascontiguousarray(feats.detach().cpu().numpy(), dtype=np.float32)
        n = np.ascontiguousarray(lens.detach().cpu().numpy(), dtype=np.int64)
        log_probs, out_lens = self.session.run(list(OUTPUTS), {INPUTS[0]: x, INPUTS[1]: n})
        return torch.from_numpy(log_probs), torch.from_numpy(out_lens).long()
