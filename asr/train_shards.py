"""Training from tar shards (``asr shard``): the texts, CMVN sample and epochs of batches that
:class:`asr.train.Trainer` uses when ``--train`` names a shard folder instead of a manifest.

Batch semantics are those of a manifest run: ``data.max_frames`` padded frames per optimiser
step in all, so each of N ranks plans batches of ``max_frames // N`` frames (and ``max_batch //
N`` utterances, at least 1) from its own disjoint shards (:mod:`asr.shard_batches`). Unlike a
manifest run the batches themselves differ with N (each rank batches its own shards), so the
same config trains alike, not identically, on different process counts; a checkpoint taken at
an epoch's end resumes with any N, one taken within an epoch only with the same N and workers.
"""

from __future__ import annotations

import functools
import json
import logging
import tarfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from asr.audio import decode_audio
from asr.config import ExperimentConfig
from asr.data import Batch, FeatureSource
from asr.distributed import Dist
from asr.errors import UserError
from asr.features import GlobalCMVN
from asr.manifest import Utterance
from asr.shard_batches import ShardStream, StreamConfig, _ShardReader, to_batch
from asr.shards import INDEX, ShardSet

log = logging.getLogger(__name__)
CMVN_SAMPLE = 2000  # utterances whose features give the global CMVN statistics


def is_shard_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``asr shard`` (it holds ``shards.json``)."""
    return Path(path).is_dir() and (Path(path) / INDEX).is_file()


def shard_texts(shards: ShardSet) -> Iterator[str]:
    """Every utterance's text, from the shards' JSON members only (no audio is read)."""
    for info in shards.shards:
        path = shards.dir / info.name
        try:
            with tarfile.open(path, "r:") as tf:
                for m in tf:
                    if m.name.endswith(".json"):
                        yield json.loads(tf.extractfile(m).read())["text"]
        except (OSError, tarfile.TarError, ValueError, KeyError) as e:
            raise UserError(f"cannot read shard {path}: {e}") from None


def shard_cmvn(shards: ShardSet, source: FeatureSource, n: int, seed: int,
               on_error: Callable[[Utterance, str], None], dist: Dist) -> dict[str, torch.Tensor]:
    """Global CMVN statistics of a seeded random sample of ``n`` utterances (all, when fewer),
    read from the shards; every rank reads its share of the sample and the sums are added up."""
    counts = [s.count for s in shards.shards]
    every = np.concatenate([np.stack([np.full(c, k), np.arange(c)], 1) for k, c in enumerate(counts)])
    pick = np.random.default_rng(seed).permutation(len(every))[:n]
    sample = sorted(map(tuple, every[np.sort(pick)].tolist()))[dist.rank::dist.world]
    stats, reader = GlobalCMVN(source.fcfg.dim), _ShardReader(shards)
    try:
        for s, pos in sample:
            meta, audio, ext = reader.get(s, pos)
            where = f"{shards.dir / shards.shards[s].name}#{meta['id']}.{ext}"
            try:
                stats.accumulate(source.extract(decode_audio(audio, source.fcfg.sample_rate, where)))
            except UserError as e:
                on_error(Utterance(meta["id"], where, float(meta["duration"]), meta["text"],
                                   meta.get("speaker", "")), getattr(e, "reason", str(e)))
    finally:
        reader.close()
    if dist.world > 1:  # as compute_cmvn: float64 sums over the ranks
        dim = stats.sum.numel()
        total = dist.all_sum(torch.cat([stats.sum, stats.sumsq,
                                        torch.tensor([stats.count], dtype=torch.float64)]))
        stats.sum, stats.sumsq, stats.count = total[:dim], total[dim:2 * dim], int(total[-1])
    if stats.count == 0:
        raise UserError(f"{shards.dir}: no readable audio in the CMVN sample")
    return stats.stats()


class ShardEpochs:
    """A rank's epochs of training batches from a shard folder."""

    def __init__(self, shards: ShardSet, cfg: ExperimentConfig, source: FeatureSource,
                 encode: Callable[[str], list[int] | None], dist: Dist):
        d = cfg.data
        self.workers = d.workers
        scfg = StreamConfig(max(1, d.max_frames // dist.world), max(1, d.max_batch // dist.world),
                            d.num_buckets, d.shuffle_buffer, d.min_duration, d.max_duration,
                            tuple(d.speed_perturb or [1.0]))
        collate = functools.partial(to_batch, source=source, dcfg=d, spec=cfg.specaug,
                                    encode=encode)
        self.stream = ShardStream(shards, scfg, cfg.features, cfg.train.seed, dist.rank,
                                  dist.world, max(1, d.workers), collate)

    def steps_in_epoch(self, epoch: int) -> int:
        """Optimiser steps in ``epoch``: batch indices that are not padding on every rank."""
        self.stream.set_epoch(epoch)
        return self.stream.steps

    def epoch(self, epoch: int, cursor: int, on_error: Callable[[Utterance, str], None]
              ) -> Iterator[tuple[int, Batch | None]]:
        """``(batch index, Batch or None)`` from batch ``cursor`` on; equally many on every rank."""
        self.stream.set_epoch(epoch, cursor)
        loader = torch.utils.data.DataLoader(self.stream, batch_size=None,
                                             num_workers=self.workers,
                                             worker_init_fn=_one_thread)
        for bi, (batch, errors) in loader:
            for u, why in errors:
                on_error(u, why)
            yield bi, batch


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # workers decode audio side by side: no thread oversubscription
