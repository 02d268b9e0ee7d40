"""Atomic, code-free checkpoint and model files.

Files are written to a temporary file in the same folder, fsynced and renamed, so a crash never
leaves a partial file. They are read with ``torch.load(weights_only=True)``: a file that carries a
pickled object (code) is refused without running it.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable

import torch

from asr.errors import UserError
from asr.fileio import temp_file_beside
from asr.tokenizer import valid_tokenizer_dict

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
    """Load a checkpoint/model with weights_only=True; every failure is a one-line UserError
    naming the file, never torch's or pickle's own exception text. (A file the system will not
    let us open raises its OSError: "permission denied" is not a bad file.)"""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder, not a file")
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    with open(p, "rb") as f:
        try:
            obj = torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            m = _GLOBAL.search(str(e))
            if m is None:  # e.g. "Unsupported operand": bytes that are no torch file
                raise _not_ours(p, what) from None
            raise UserError(f"refusing to load {p}: it is not a plain weights file (would need "
                            f"to run pickled code); it holds the Python object {m.group(1)}"
                            ) from None
        except Exception:  # torch and pickle raise many types for foreign or cut bytes:
            raise _not_ours(p, what) from None  # IndexError, KeyError, EOFError, struct.error...
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{p} is not an asr {what}")
    version = obj.get("version")
    if version != VERSION:
        shown = version if type(version) is int else "unknown"
        raise UserError(f"{p} has format version {shown}; this asr reads version {VERSION}")
    return obj


# torch's weights-only unpickler names the object it refused: "Unsupported global: GLOBAL x.y"
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]{1,200})")


def _not_ours(p: Path, what: str) -> UserError:
    return UserError(f"{p}: not a {what} written by asr train (truncated or another format)")


def load_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`safe_load` a model file and check it holds every part a Recognizer is built from
    (config, tokenizer, CMVN statistics, weights), so a damaged file is one line, not a
    KeyError deep in the model code."""
    obj = safe_load(path, "model file")
    bad = [k for k, ok in _MODEL_PARTS.items() if not _holds(ok, obj.get(k))]
    if bad:
        raise UserError(f"{path} is an incomplete asr model file (missing or malformed: "
                        f"{', '.join(bad)})")
    return obj


def _holds(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except (TypeError, AttributeError):  # e.g. an unhashable "kind" in a damaged file
        return False


def _tensors(d: Any) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor)
                                                   for v in d.values())


# What a model file must hold for Recognizer.from_file (checkpoints hold other things).
_MODEL_PARTS = {
    "config": lambda v: isinstance(v, dict),
    "tokenizer": valid_tokenizer_dict,  # a known kind, with the fields that kind reads
    "cmvn": lambda v: _tensors(v) and {"mean", "std"} <= set(v),
    "model": _tensors,
}
