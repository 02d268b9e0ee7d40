"""Atomic, code-free checkpoint and model files.

Files are written to a temporary file in the same folder, fsynced and renamed, so a crash never
leaves a partial file. They are read with ``torch.load(weights_only=True)``: a file that carries a
pickled object (code) is refused without running it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from asr.errors import UserError
from asr.manifest import temp_file_beside

FORMAT = "asr-model"
VERSION = 1


def atomic_save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(p)  # also clears what a killed writer of p left
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_load(path: str | os.PathLike, what: str = "model file") -> dict[str, Any]:
    """Load a checkpoint/model with weights_only=True; every failure is a one-line UserError."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder, not a file")
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        reason = next((ln for ln in first if "Unsupported" in ln or "global" in ln.lower()), "")
        raise UserError(f"refusing to load {p}: it is not a plain weights file "
                        f"(would need to run pickled code){': ' + reason.strip() if reason else ''}"
                        ) from None
    except Exception as e:  # torch raises many types for foreign bytes (IndexError, struct.error...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read {what} {p} (truncated or not a checkpoint): {msg}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{p} is not an asr {what}")
    if obj.get("version") != VERSION:
        raise UserError(f"{p} has format version {obj.get('version')}; this asr reads version "
                        f"{VERSION}")
    return obj


def load_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`safe_load` a model file and check it holds every part a Recognizer is built from
    (config, tokenizer, CMVN statistics, weights), so a damaged file is one line, not a
    KeyError deep in the model code."""
    obj = safe_load(path, "model file")
    bad = [k for k, ok in _MODEL_PARTS.items() if not ok(obj.get(k))]
    if bad:
        raise UserError(f"{path} is an incomplete asr model file (missing or malformed: "
                        f"{', '.join(bad)})")
    return obj


def _tensors(d: Any) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor)
                                                   for v in d.values())


# What a model file must hold for Recognizer.from_file (checkpoints hold other things).
_MODEL_PARTS = {
    "config": lambda v: isinstance(v, dict),
    "tokenizer": lambda v: isinstance(v, dict) and (
        (v.get("kind") in ("char", "phone", "word") and isinstance(v.get("symbols"), list))
        or (v.get("kind") == "bpe" and isinstance(v.get("model_proto"), bytes))),
    "cmvn": lambda v: _tensors(v) and {"mean", "std"} <= set(v),
    "model": _tensors,
}
