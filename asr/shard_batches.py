"""Training batches from tar shards: each epoch planned up front, every utterance read once.

The plan of an epoch is a pure function of (shards.json, settings, seed, epoch, world, workers),
computed from the index alone, before any audio is read:

1. The shards are shuffled with (seed, epoch) and dealt to the ``world * workers`` streams
   (stream ``rank * workers + worker``), each to the stream with the fewest frames so far, so
   the streams are disjoint, cover every shard and are balanced in length.
2. Each stream reads its shards in that order; every ``buffer`` utterances form a chunk, and a
   chunk is cut into length-bucketed, shuffled batches by :func:`asr.data.make_batches` (the
   frame budget ``max_frames`` and ``max_batch`` hold per rank). Speed factors and augmentation
   seeds are drawn per utterance from (seed, epoch, shard, position).
3. Every stream is padded with empty batches to the longest stream's count, so every rank
   yields the same number of batches (``batches_per_rank``) and the collectives of a step
   always meet; the trainer skips a step whose batch is empty on every rank.

A rank's batch ``k`` comes from its stream ``k % workers``. A DataLoader over an
IterableDataset yields its workers' items round-robin from worker 0, and all streams yield
equally many, so after a cursor (batches of the epoch already consumed) DataLoader worker ``i``
runs stream ``(i + cursor) % workers`` and each stream skips its consumed batches: skipped
chunks are not read at all, and in a partly consumed chunk only the utterances of the remaining
batches are. A cursor is meaningful for the same world size and workers.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from asr.audio import decode_audio, perturbed_length
from asr.data import Batch, collate, draw_wave_aug, make_batches
from asr.errors import UserError
from asr.features import FeatureConfig, spec_augment
from asr.manifest import Utterance
from asr.shards import ShardSet, sample_key

log = logging.getLogger(__name__)
_MASK = np.uint64(2**64 - 1)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 of uint64s (vectorised): well-spread seeds from small integers."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def _seed(*parts: int) -> int:
    h = np.uint64(0)
    for p in parts:
        h = _mix(np.asarray([h ^ np.uint64(p)], dtype=np.uint64))[0]
    return int(h >> np.uint64(1))


@dataclass(frozen=True)
class StreamConfig:
    """Batching of a shard stream: ``max_frames`` padded frames and ``max_batch`` utterances
    per batch, ``num_buckets`` length buckets per chunk of ``buffer`` utterances (held as
    encoded audio while their batches are formed), utterances outside [min, max]_duration left
    out of the plan, one of ``speeds`` drawn per utterance and epoch."""

    max_frames: int = 20000
    max_batch: int = 64
    num_buckets: int = 10
    buffer: int = 1000
    min_duration: float = 0.0
    max_duration: float = math.inf
    speeds: tuple[float, ...] = (1.0,)

    @classmethod
    def from_data(cls, dcfg, buffer: int = 1000) -> "StreamConfig":
        """The settings of a :class:`asr.config.DataConfig`."""
        return cls(dcfg.max_frames, dcfg.max_batch, dcfg.num_buckets, buffer, dcfg.min_duration,
                   dcfg.max_duration, tuple(dcfg.speed_perturb or [1.0]))


@dataclass
class StreamItem:
    """One utterance of a batch: metadata, audio at the features' rate (speed 1), the speed it
    is to be perturbed by, and its augmentation seed for this epoch."""

    utt: Utterance  # audio_path: "<shard path>#<key>"
    wave: torch.Tensor  # (T,) float32
    speed: float
    seed: int


@dataclass
class StreamBatch:
    """Batch ``index`` of a rank's epoch; ``errors``: (utterance, reason) of unreadable audio.
    An empty batch (no items, no errors) is padding."""

    epoch: int
    index: int
    items: list[StreamItem] = field(default_factory=list)
    errors: list[tuple[Utterance, str]] = field(default_factory=list)


@dataclass
class _Stream:
    """One stream's plan: flat per-utterance arrays in reading order, and its chunks of
    batches (each batch: positions into the flat arrays)."""

    shard: np.ndarray
    pos: np.ndarray
    speed: np.ndarray
    seed: np.ndarray
    chunks: list[list[np.ndarray]]

    @property
    def batches(self) -> int:
        return sum(len(c) for c in self.chunks)


def plan_epoch(shards: ShardSet, cfg: StreamConfig, frames: list[np.ndarray], seed: int,
               epoch: int, streams: int, workers: int = 1) -> list[_Stream]:
    """Every stream's plan for one epoch (see the module's docstring). ``frames[v][s]``: the
    input frames of shard ``s``'s utterances at speed ``cfg.speeds[v]``. Ties in load go to
    the ranks in turn (stream ``rank * workers + worker``), so with fewer shards than streams
    every rank still gets some before any rank's second worker does."""
    n = len(shards.shards)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    base = _seed(seed, epoch)
    per_shard = []  # (speed index, seed, frames) per shard
    for s, info in enumerate(shards.shards):
        keys = (np.uint64(s) << np.uint64(32)) | np.arange(info.count, dtype=np.uint64)
        h = _mix(keys ^ np.uint64(base))
        v = (h % np.uint64(len(cfg.speeds))).astype(np.int64)
        f = np.choose(v, [frames[k][s] for k in range(len(cfg.speeds))]) if info.count else \
            np.zeros(0, np.int64)
        per_shard.append((v, (h >> np.uint64(1)).astype(np.int64), f))
    ranks = max(1, streams // workers)
    loads = [(0, (k % workers) * ranks + k // workers, k) for k in range(streams)]
    heapq.heapify(loads)
    mine: list[list[int]] = [[] for _ in range(streams)]
    for s in order.tolist():
        load, tie, k = heapq.heappop(loads)
        mine[k].append(s)
        heapq.heappush(loads, (load + int(per_shard[s][2].sum()), tie, k))
    out = []
    for k in range(streams):
        parts = [(np.full(shards.shards[s].count, s, np.int64),
                  np.arange(shards.shards[s].count, dtype=np.int64), *per_shard[s],
                  shards.shards[s].durations) for s in mine[k]]
        sh, pos, v, sd, f, dur = (np.concatenate(p) for p in zip(*parts)) if parts else \
            (np.zeros(0, np.int64),) * 5 + (np.zeros(0),)
        keep = np.flatnonzero((dur >= cfg.min_duration) & (dur <= cfg.max_duration))
        chunks = []
        for c0 in range(0, len(keep), cfg.buffer):
            idx = keep[c0:c0 + cfg.buffer]
            gen = torch.Generator().manual_seed(_seed(seed, epoch, k, c0))
            chunks.append([idx[np.asarray(b)] for b in make_batches(
                f[idx].tolist(), cfg.max_frames, cfg.max_batch, cfg.num_buckets, gen)])
        out.append(_Stream(sh, pos, np.asarray(cfg.speeds, dtype=np.float64)[v], sd, chunks))
    return out


class _ShardReader:
    """Forward reading of shards by (shard, position): a shard's member list is read once
    (headers only), a sample's members only when it is wanted."""

    def __init__(self, shards: ShardSet):
        self.shards, self.cur, self.tf, self.samples = shards, -1, None, []

    def get(self, s: int, pos: int) -> tuple[dict, bytes, str]:
        if s != self.cur:
            self.close()
            info = self.shards.shards[s]
            path = self.shards.dir / info.name
            try:
                self.tf = tarfile.open(path, "r:")
                groups: dict[str, dict[str, tarfile.TarInfo]] = {}
                for m in self.tf.getmembers():
                    key, _, ext = m.name.partition(".")
                    groups.setdefault(key, {})[ext] = m
            except (OSError, tarfile.TarError) as e:
                raise UserError(f"cannot read shard {path}: {e}") from None
            self.samples = list(groups.items())
            if len(self.samples) != info.count:
                raise UserError(f"shard {path} holds {len(self.samples)} utterances, "
                                f"shards.json says {info.count}: reshard (asr shard)")
            self.cur = s
        key, members = self.samples[pos]
        meta = json.loads(self.tf.extractfile(members["json"]).read())
        ext = next(e for e in members if e != "json")
        if sample_key(meta["id"]) != key:
            raise UserError(f"shard {self.shards.shards[s].name}: sample {key} is not "
                            f"utterance {meta['id']}")
        return meta, self.tf.extractfile(members[ext]).read(), ext

    def close(self) -> None:
        if self.tf is not None:
            self.tf.close()
        self.tf, self.cur, self.samples = None, -1, []


class ShardStream(torch.utils.data.IterableDataset):
    """Rank ``rank``'s batches of a shard folder, for ``workers`` DataLoader workers (1 without
    workers); see the module's docstring. Call :meth:`set_epoch` before iterating. With
    ``collate`` each element is ``(index, collate(StreamBatch))`` (run in the worker), else
    ``(index, StreamBatch)``. Iterated outside a DataLoader worker it yields all the rank's
    workers' batches round-robin, the order a DataLoader yields them in."""

    def __init__(self, shards: ShardSet | str | Path, cfg: StreamConfig, fcfg: FeatureConfig,
                 seed: int = 0, rank: int = 0, world: int = 1, workers: int = 1,
                 collate: Callable[[StreamBatch], Any] | None = None):
        self.shards = shards if isinstance(shards, ShardSet) else ShardSet.load(shards)
        if not 0 <= rank < world or workers < 1:
            raise ValueError(f"rank {rank} of world {world} with {workers} workers")
        self.cfg, self.fcfg, self.seed = cfg, fcfg, seed
        self.rank, self.world, self.workers, self.collate = rank, world, workers, collate
        sr = fcfg.sample_rate
        self.frames = [[np.asarray([fcfg.num_frames(perturbed_length(int(d * sr), sr, v))
                                    for d in s.durations.tolist()], dtype=np.int64)
                        for s in self.shards.shards] for v in cfg.speeds]
        self.epoch, self.cursor, self.mine, self.batches_per_rank = None, 0, [], 0
        self.padding = 0.0  # the planned epoch's fraction of empty (padding) batches
        if len(self.shards.shards) < world * workers:
            log.warning("%d shards for %d streams (ranks x workers): some streams get none and "
                        "yield empty batches; cut smaller shards", len(self.shards.shards),
                        world * workers)

    def set_epoch(self, epoch: int, cursor: int = 0) -> int:
        """Plan ``epoch``; the first ``cursor`` batches (already consumed) will be skipped.
        Returns the number of batches each rank yields in the whole epoch."""
        plans = plan_epoch(self.shards, self.cfg, self.frames, self.seed, epoch,
                           self.world * self.workers, self.workers)
        per_worker = max(p.batches for p in plans)
        self.padding = 1 - sum(p.batches for p in plans) / max(1, per_worker * len(plans))
        self.mine = plans[self.rank * self.workers:(self.rank + 1) * self.workers]
        self.epoch, self.cursor = epoch, cursor
        self.batches_per_rank = per_worker * self.workers
        # optimiser steps: batch indices that are not padding on at least one rank
        W = self.workers
        self.steps = sum(max(plans[r * W + w].batches for r in range(self.world))
                         for w in range(W))
        if not 0 <= cursor <= self.batches_per_rank:
            raise UserError(f"cursor {cursor} is outside epoch {epoch} "
                            f"({self.batches_per_rank} batches)")
        return self.batches_per_rank

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if self.epoch is None:
            raise RuntimeError("ShardStream.set_epoch(epoch, cursor) before iterating")
        info = torch.utils.data.get_worker_info()
        if info is not None:
            if info.num_workers != self.workers:
                raise ValueError(f"DataLoader has {info.num_workers} workers, the stream was "
                                 f"planned for {self.workers}")
            # a DataLoader starts its round-robin at worker 0: the one holding batch ``cursor``
            yield from self.worker_batches((info.id + self.cursor) % self.workers)
            return
        its = [self.worker_batches(w) for w in range(self.workers)]
        for k in range(self.cursor, self.batches_per_rank):
            yield next(its[k % self.workers])

    def worker_batches(self, w: int) -> Iterator[tuple[int, Any]]:
        """Worker ``w``'s batches from the cursor on, as ``(rank batch index, batch)``."""
        plan, W = self.mine[w], self.workers
        skip = max(0, -(-(self.cursor - w) // W))
        per_worker = self.batches_per_rank // W
        reader, j = _ShardReader(self.shards), 0
        try:
            for chunk in plan.chunks:
                if j + len(chunk) <= skip:
                    j += len(chunk)
                    continue
                live = chunk[max(0, skip - j):]
                j += len(chunk) - len(live)
                # the chunk's encoded audio, read in shard order; decoded a batch at a time
                got = {int(i): self._read(reader, plan, int(i))
                       for i in np.sort(np.concatenate(live))}
                for b in live:
                    sb = StreamBatch(self.epoch, j * W + w)
                    for i in b.tolist():
                        utt, wave, err = self._decode(*got.pop(i))
                        if err is not None:
                            sb.errors.append((utt, err))
                        else:
                            sb.items.append(StreamItem(utt, wave, float(plan.speed[i]),
                                                       int(plan.seed[i])))
                    yield sb.index, self.collate(sb) if self.collate else sb
                    j += 1
        finally:
            reader.close()
        for j in range(max(j, skip), per_worker):
            sb = StreamBatch(self.epoch, j * W + w)
            yield sb.index, self.collate(sb) if self.collate else sb

    def _read(self, reader: _ShardReader, plan: _Stream, i: int):
        """(Utterance, encoded audio, its name) of the stream's utterance ``i``."""
        s, pos = int(plan.shard[i]), int(plan.pos[i])
        meta, audio, ext = reader.get(s, pos)
        where = f"{self.shards.dir / self.shards.shards[s].name}#{sample_key(meta['id'])}"
        extra = {k: v for k, v in meta.items()
                 if k not in ("id", "duration", "text", "speaker", "audio_path")}
        utt = Utterance(meta["id"], where, float(meta["duration"]), meta["text"],
                        meta["speaker"], extra)
        return utt, audio, f"{where}.{ext}"

    def _decode(self, utt: Utterance, audio: bytes, name: str):
        """(Utterance, waveform or None, error or None)."""
        try:
            return utt, decode_audio(audio, self.fcfg.sample_rate, name), None
        except UserError as e:
            return utt, None, getattr(e, "reason", str(e))


def to_batch(sb: StreamBatch, source, dcfg, spec, encode) -> tuple[Batch | None, list]:
    """A StreamBatch -> (the trainer's Batch, or None when empty; [(utterance, reason)] left out).
    ``source``: a FeatureSource (its ``extract`` and CMVN); speed perturbation, audio
    augmentation (``dcfg``) and SpecAugment (``spec``) are drawn from each item's seed, as
    :func:`asr.data.train_batches` does; ``encode(text)`` gives targets (None: untokenisable)."""
    from asr.audio import speed_perturb

    errors = list(sb.errors)
    ids, feats, targets, secs = [], [], [], 0.0
    sr = source.fcfg.sample_rate
    for it in sb.items:
        t = encode(it.utt.text)
        if not t:
            errors.append((it.utt, "untokenisable or empty text"))
            continue
        g = torch.Generator().manual_seed(it.seed)
        wave = speed_perturb(it.wave, sr, it.speed)
        aug = draw_wave_aug(dcfg, sr, g)
        f = source.of_wave(aug(wave) if aug is not None else wave)
        feats.append(spec_augment(f, spec, g) if spec is not None else f)
        ids.append(it.utt.id)
        targets.append(t)
        secs += it.utt.duration
    return (collate(ids, feats, targets, secs) if ids else None), errors
