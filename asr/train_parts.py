"""Parts of training that need no Trainer: CMVN, AMP dtype, LR schedule, dev WER, averaging.

Also the config merge of fine-tuning (``--init``) and the out-of-memory test."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from asr.checkpoint import safe_load
from asr.config import ExperimentConfig, from_dict, to_dict
from asr.data import Example, FeatureSource
from asr.distributed import Dist
from asr.errors import UserError
from asr.features import GlobalCMVN
from asr.inference import Recognizer
from asr.manifest import Utterance
from asr.scoring import error_counts

log = logging.getLogger(__name__)


def is_oom(e: BaseException) -> bool:
    msg = str(e)
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in msg \
        or "can't allocate memory" in msg


def compute_cmvn(examples: list[Example], source: FeatureSource,
                 on_error: Callable[[Utterance, str], None], dist: Dist | None = None
                 ) -> dict[str, torch.Tensor]:
    """Global CMVN over the training set (unperturbed); unreadable audio goes to on_error.
    With several processes each rank reads every N-th utterance and the (float64) sums are
    added up, so every rank gets the same statistics."""
    dist = dist or Dist()
    stats = GlobalCMVN(source.fcfg.dim)
    for ex in tqdm(examples[dist.rank::dist.world], desc="CMVN statistics",
                   disable=None if dist.main else True, leave=False):
        try:
            stats.accumulate(source.base(ex.utt))
        except UserError as e:
            on_error(ex.utt, getattr(e, "reason", str(e)))
    if dist.world > 1:
        dim = stats.sum.numel()
        total = dist.all_sum(torch.cat([stats.sum, stats.sumsq,
                                        torch.tensor([stats.count], dtype=torch.float64)]))
        stats.sum, stats.sumsq, stats.count = total[:dim], total[dim:2 * dim], int(total[-1])
    return stats.stats()


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """Mixed-precision dtype for training on ``device``, or None for float32: float16 on CUDA,
    bfloat16 on CPUs that compute it natively (elsewhere emulated bf16 would be slower)."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type != "cpu":
        return None
    checks = (getattr(torch.cpu, name, lambda: False)  # private: absent in some versions
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return torch.bfloat16 if any(native() for native in checks) else None


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def score_dev(rec: Recognizer, utts: list[Utterance]) -> dict[str, float]:
    """Greedy dev WER/CER through the one forward path and the one counter."""
    hyps = rec.decode_utterances(utts, words=False)
    words, chars = error_counts([u.text for u in utts], [hyps[u.id].text for u in utts])
    return {"dev_wer": words.rate, "dev_cer": chars.rate}


def normalise(utts: list[Utterance], cfg: ExperimentConfig) -> list[Utterance]:
    for u in utts:
        u.text = cfg.text(u.text)
    return utts


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights in ``paths`` (integer buffers from the last)."""
    states = [safe_load(p, "checkpoint")["model"] for p in paths]
    avg = {}
    for k, v in states[-1].items():
        avg[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype) \
            if v.is_floating_point() else v
    return avg


def with_init_sections(cfg: ExperimentConfig, init_cfg: dict, path: str | Path
                       ) -> ExperimentConfig:
    """``cfg`` with the features, model, tokenizer and text sections of a model being
    fine-tuned (its weights only fit those); a differing setting is logged, not an error."""
    try:
        src = from_dict(ExperimentConfig, init_cfg)
    except (UserError, ValueError) as e:  # our own one-line messages
        raise UserError(f"{path}: the model file does not fit this asr ({e})") from None
    merged, init_sections = to_dict(cfg), to_dict(src)
    for section in ("features", "model", "tokenizer", "text"):
        theirs = init_sections[section]
        changed = [k for k, v in merged[section].items() if theirs.get(k) != v]
        if changed:
            log.info("--init: %s.%s taken from %s", section, ",".join(changed), path)
        merged[section] = theirs
    return from_dict(ExperimentConfig, merged)
