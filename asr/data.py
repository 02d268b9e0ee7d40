"""Manifest -> filtered, tokenised utterances -> length-bucketed padded batches.

Legend: B batch, T frames, F features, U target length. All randomness comes from
``torch.Generator``s seeded by (seed, epoch) so an epoch's batches are reproducible on resume.
With several training processes each rank gets its share of every batch (``share``); every
utterance's augmentation is drawn from a generator of its own, so the shares are the same
utterances, augmented the same way, as the whole batch of a one-process run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from asr.audio import (AudioError, add_noise, audio_info, load_audio, perturbed_length,
                       read_audio, speed_perturb)
from asr.config import DataConfig
from asr.features import (FeatureConfig, FeatureExtractor, GlobalCMVN, SpecAugmentConfig, apply_cmvn,
                          spec_augment, utterance_cmvn)
from asr.errors import UserError
from asr.manifest import Utterance

log = logging.getLogger(__name__)


def ctc_min_frames(targets: list[int]) -> int:
    """Fewest frames CTC needs for ``targets``: one per token plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(targets, targets[1:]) if a == b)
    return len(targets) + repeats


@dataclass
class Example:
    utt: Utterance
    targets: list[int]
    frames: int  # input frames at speed 1.0


def audio_problem(u: Utterance, read: bool = False) -> str | None:
    """Why ``u``'s audio cannot be used, else None: missing, empty, unreadable or truncated
    (header only), or with ``read`` also unreadable samples and NaN/Inf (reads the segment)."""
    try:
        if read:
            offset = float(u.extra.get("offset", 0.0))
            read_audio(u.audio_path, offset, u.duration if "offset" in u.extra else None)
        else:
            audio_info(u.audio_path)
    except AudioError as e:
        return e.reason
    return None


def filter_utterances(utts: list[Utterance], encode, fcfg: FeatureConfig, dcfg: DataConfig,
                      subsample: int, what: str = "train") -> list[Example]:
    """Keep utterances that tokenise, fit the duration limits, and that CTC can align at the
    slowest (shortest) speed perturbation. Logs a count per reason."""
    slowest = max(dcfg.speed_perturb or [1.0]) if what == "train" else 1.0
    counts = {"untokenisable": 0, "too_long": 0, "too_short": 0, "ctc_infeasible": 0, "empty": 0}
    out: list[Example] = []
    for u in utts:
        targets = encode(u.text)
        if targets is None:
            counts["untokenisable"] += 1
            continue
        if not targets:
            counts["empty"] += 1
            continue
        if u.duration > dcfg.max_duration:
            counts["too_long"] += 1
            continue
        if u.duration < dcfg.min_duration:
            counts["too_short"] += 1
            continue
        samples = int(u.duration * fcfg.sample_rate)
        frames = fcfg.num_frames(samples)
        short = perturbed_length(samples, fcfg.sample_rate, slowest)
        avail = math.ceil(fcfg.num_frames(short) / subsample)
        if avail < ctc_min_frames(targets):
            counts["ctc_infeasible"] += 1
            continue
        out.append(Example(u, targets, frames))
    dropped = {k: v for k, v in counts.items() if v}
    log.info("%s: kept %d of %d utterances; dropped %s", what, len(out), len(utts),
             dropped or "none")
    return out


@dataclass
class Batch:
    ids: list[str]
    feats: torch.Tensor  # (B, T, F)
    lens: torch.Tensor  # (B,)
    targets: torch.Tensor  # (sum U,)
    target_lens: torch.Tensor  # (B,)
    seconds: float  # audio seconds in the batch
    n_total: int = 0  # utterances in the whole batch, over every rank's share (0: these only)

    @classmethod
    def empty(cls, dim: int) -> "Batch":
        """A share without utterances (a rank's share of a batch smaller than the ranks)."""
        none = torch.zeros(0, dtype=torch.long)
        return cls([], torch.zeros(0, 0, dim), none, none, none, 0.0)

    def split(self) -> list["Batch"]:
        """Two halves (for retrying a batch that ran out of memory)."""
        h = len(self.ids) // 2
        cut = int(self.target_lens[:h].sum())
        out = []
        for sl, tsl in ((slice(0, h), slice(0, cut)), (slice(h, None), slice(cut, None))):
            lens = self.lens[sl]
            out.append(Batch(self.ids[sl], self.feats[sl, : int(lens.max())], lens,
                             self.targets[tsl], self.target_lens[sl], self.seconds / 2))
        return out


def collate(ids: list[str], feats: list[torch.Tensor], targets: list[list[int]],
            seconds: float) -> Batch:
    lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    flat = torch.tensor([t for ts in targets for t in ts], dtype=torch.long)
    tlens = torch.tensor([len(t) for t in targets], dtype=torch.long)
    return Batch(ids, padded, lens, flat, tlens, seconds)


def make_batches(frames: list[int], max_frames: int, max_batch: int, num_buckets: int,
                 gen: torch.Generator | None) -> list[list[int]]:
    """Group indices into batches of similar length whose padded size (B * max T) stays within
    ``max_frames``. With a generator, lengths are bucketed and batches shuffled; without, the
    order is by length (for evaluation)."""
    order = sorted(range(len(frames)), key=lambda i: frames[i])
    if gen is not None and num_buckets > 1:
        # Shuffle inside length buckets so batches differ between epochs but stay length-sorted.
        size = math.ceil(len(order) / num_buckets)
        buckets = [order[i:i + size] for i in range(0, len(order), size)]
        order = []
        for b in buckets:
            order += [b[p] for p in torch.randperm(len(b), generator=gen).tolist()]
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        m = max(cur_max, frames[i])
        if cur and (m * (len(cur) + 1) > max_frames or len(cur) >= max_batch):
            batches.append(cur)
            cur, m = [], frames[i]
        cur.append(i)
        cur_max = m
    if cur:
        batches.append(cur)
    if gen is not None:
        perm = torch.randperm(len(batches), generator=gen).tolist()
        batches = [batches[p] for p in perm]
    return batches


@dataclass
class WaveAug:
    """Per-utterance audio augmentation drawn for one training step: noise at ``snr_db`` (None:
    none), ``trim`` samples cut off the (start, end), ``pad`` samples of silence added."""

    snr_db: float | None = None
    trim: tuple[int, int] = (0, 0)
    pad: tuple[int, int] = (0, 0)
    warp: float = 1.0  # VTLN warp factor of the features (data.vtlp)
    gen: torch.Generator | None = None

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        a, b = self.trim
        if a or b:
            keep = wave[a:wave.shape[0] - b]
            wave = keep if keep.shape[0] > 0 else wave
        if any(self.pad):
            wave = torch.nn.functional.pad(wave, self.pad)
        return add_noise(wave, self.snr_db, self.gen) if self.snr_db is not None else wave

    @property
    def active(self) -> bool:
        return self.snr_db is not None or any(self.trim) or any(self.pad) or self.warp != 1.0


def draw_wave_aug(dcfg: DataConfig, sample_rate: int, gen: torch.Generator) -> WaveAug | None:
    """Draw one utterance's WaveAug from ``gen`` (None when the config asks for none)."""
    if not (dcfg.noise_snr or dcfg.trim_ms or dcfg.pad_ms or dcfg.vtlp):
        return None
    u = torch.rand(5, generator=gen).tolist()
    aug = WaveAug(gen=gen)
    if dcfg.noise_snr and u[0] < dcfg.noise_prob:
        lo, hi = dcfg.noise_snr
        aug.snr_db = lo + (hi - lo) * u[1]
    per_ms = sample_rate / 1000.0
    aug.trim = (int(u[2] * dcfg.trim_ms * per_ms), int(u[3] * dcfg.trim_ms * per_ms))
    pad = torch.rand(2, generator=gen).tolist()
    aug.pad = (int(pad[0] * dcfg.pad_ms * per_ms), int(pad[1] * dcfg.pad_ms * per_ms))
    if dcfg.vtlp:  # drawn last: the draws above are those of a config without it
        lo, hi = dcfg.vtlp
        # on a grid of 0.001 steps, so that the fbank builds each warped mel matrix once
        aug.warp = round(lo + (hi - lo) * float(torch.rand(1, generator=gen)), 3)
    return aug


class FeatureSource:
    """Computes (and optionally caches) normalised features for an utterance at a speed.

    With an active WaveAug the features are of the augmented (speed-perturbed) audio: then the
    audio is what is cached, and the features are computed afresh each time.

    Normalisation: with ``features.speaker_cmvn`` the extractor's output is first standardised
    with the statistics of its (speaker, speed) in :attr:`speakers` (each speed-perturbed copy of
    a speaker is its own speaker, as in Kaldi's speed-perturbation recipes), or with its own
    where the speaker is unknown; global CMVN (:attr:`cmvn`) then applies on top."""

    def __init__(self, fcfg: FeatureConfig, cmvn: dict[str, torch.Tensor] | None, cache: bool):
        self.fcfg = fcfg
        self.extract = FeatureExtractor(fcfg)
        self.cmvn = cmvn
        self.speakers: dict[tuple[str, float], dict[str, torch.Tensor]] = {}
        self.warps: dict[str, float] = {}  # speaker -> VTLN warp factor (asr.adapt), else 1
        self.cache: dict[tuple[str, float, float], torch.Tensor] | None = {} if cache else None
        self.wave_cache: dict[tuple[str, float], torch.Tensor] | None = {} if cache else None

    def speaker_stats(self, utts: Sequence[Utterance], speeds: Sequence[float] = (1.0,),
                      on_error: Callable[[Utterance, str], None] | None = None
                      ) -> dict[tuple[str, float], dict[str, torch.Tensor]]:
        """Mean and deviation of the unaugmented features of each speaker's utterances, at each
        speed: ``{(speaker, speed): {"mean", "std"}}``. Utterances without a speaker are left
        out; unreadable audio goes to ``on_error`` (without it the UserError propagates)."""
        acc: dict[tuple[str, float], GlobalCMVN] = {}
        for speed in speeds:
            for u in utts:
                if not u.speaker:
                    continue
                try:
                    feats = self.raw(u, speed)
                except UserError as e:
                    if on_error is None:
                        raise
                    on_error(u, getattr(e, "reason", str(e)))
                    continue
                acc.setdefault((u.speaker, speed), GlobalCMVN(self.fcfg.dim)).accumulate(feats)
        return {k: a.stats() for k, a in acc.items()}

    def wave(self, u: Utterance, speed: float = 1.0, keep: bool = False) -> torch.Tensor:
        """The utterance's audio at ``speed``; ``keep`` caches it (for augmented reuse)."""
        key = (u.id, speed)
        if self.wave_cache is not None and key in self.wave_cache:
            return self.wave_cache[key]
        offset = float(u.extra.get("offset", 0.0))
        wave = load_audio(u.audio_path, self.fcfg.sample_rate, offset,
                          u.duration if "offset" in u.extra else None)
        wave = speed_perturb(wave, self.fcfg.sample_rate, speed)
        if keep and self.wave_cache is not None:
            self.wave_cache[key] = wave
        return wave

    def raw(self, u: Utterance, speed: float = 1.0, aug: WaveAug | None = None) -> torch.Tensor:
        """The extractor's features (no normalisation): of the augmented audio with an active
        ``aug``; otherwise warped by the speaker's VTLN factor in :attr:`warps`, if any."""
        if aug is not None and aug.active:
            return self.extract(aug(self.wave(u, speed, keep=True)), aug.warp)
        warp = self.warps.get(u.speaker, 1.0) if u.speaker else 1.0
        key = (u.id, speed, warp)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        feats = self.extract(self.wave(u, speed), warp)
        if self.cache is not None:
            self.cache[key] = feats
        return feats

    def base(self, u: Utterance, speed: float = 1.0, aug: WaveAug | None = None
             ) -> torch.Tensor:
        """Features before global CMVN: the extractor's, speaker-normalised where configured."""
        feats = self.raw(u, speed, aug)
        if not self.fcfg.speaker_cmvn:
            return feats
        stats = self.speakers.get((u.speaker, speed)) if u.speaker else None
        return apply_cmvn(feats, stats) if stats is not None else utterance_cmvn(feats)

    def __call__(self, u: Utterance, speed: float = 1.0, aug: WaveAug | None = None
                 ) -> torch.Tensor:
        return self._normalised(self.base(u, speed, aug))

    def of_wave(self, wave: torch.Tensor) -> torch.Tensor:
        """Normalised features of a waveform (mono, at the feature sample rate); with speaker
        CMVN the waveform's own statistics stand in for its unknown speaker's."""
        feats = self.extract(wave)
        return self._normalised(utterance_cmvn(feats) if self.fcfg.speaker_cmvn else feats)

    def _normalised(self, feats: torch.Tensor) -> torch.Tensor:
        return apply_cmvn(feats, self.cmvn) if self.cmvn is not None else feats


def share(frames: list[int], rank: int, world: int) -> list[int]:
    """Positions (in order) of rank ``rank``'s share of a batch whose utterances have ``frames``:
    longest first, the utterances are dealt round-robin to the ``world`` ranks, so the shares are
    disjoint, cover the batch, differ by at most one utterance and are balanced in length. A
    batch smaller than ``world`` leaves the last ranks an empty share."""
    by_length = sorted(range(len(frames)), key=lambda k: (-frames[k], k))
    return sorted(by_length[rank::world])


def train_batches(examples: list[Example], source: FeatureSource, dcfg: DataConfig,
                  spec: SpecAugmentConfig | None, seed: int, epoch: int,
                  on_error: Callable[[Utterance, str], None] | None = None,
                  rank: int = 0, world: int = 1):
    """Yield ``(index, Batch)`` for one training epoch: speed perturbation, audio augmentation
    (noise, trimmed and padded edges) and SpecAugment drawn from generators seeded by
    (seed, epoch). The batch list is fixed before the first yield and does not depend on
    ``world``; with ``world`` > 1 each Batch is rank ``rank``'s share of it (:func:`share`).

    An utterance whose audio cannot be read is passed to ``on_error`` and left out of its batch
    (a batch, or share, left empty yields None); without ``on_error`` the UserError propagates."""
    gen = torch.Generator().manual_seed(seed * 100003 + epoch)
    speeds = dcfg.speed_perturb or [1.0]
    choice = torch.randint(0, len(speeds), (len(examples),), generator=gen).tolist()
    sr = source.fcfg.sample_rate
    frames = [source.fcfg.num_frames(perturbed_length(int(ex.utt.duration * sr), sr, speeds[c]))
              for ex, c in zip(examples, choice)]
    batches = make_batches(frames, dcfg.max_frames, dcfg.max_batch, dcfg.num_buckets, gen)
    aug_seeds = torch.randint(0, 2**62, (len(batches),), generator=gen).tolist()
    for bi, idx in enumerate(batches):
        # one generator per utterance: its draws do not depend on who else is in the share
        utt_seeds = torch.randint(0, 2**62, (len(idx),),
                                  generator=torch.Generator().manual_seed(aug_seeds[bi])).tolist()
        feats, targets, secs = [], [], 0.0
        ids = []
        for k in share([frames[i] for i in idx], rank, world):
            i, g = idx[k], torch.Generator().manual_seed(utt_seeds[k])
            aug = draw_wave_aug(dcfg, sr, g)
            try:
                f = source(examples[i].utt, speeds[choice[i]], aug)
            except UserError as e:
                if on_error is None:
                    raise
                on_error(examples[i].utt, getattr(e, "reason", str(e)))
                continue
            feats.append(spec_augment(f, spec, g) if spec is not None else f)
            targets.append(examples[i].targets)
            ids.append(examples[i].utt.id)
            secs += examples[i].utt.duration
        yield bi, (collate(ids, feats, targets, secs) if ids else None)


_END = object()


def prefetch(items, depth: int):
    """Iterate ``items`` with up to ``depth`` of them prepared ahead in a background thread, so
    the training thread does not wait for audio reading, features and augmentation (torch
    releases the GIL inside its kernels, so the two overlap). The order, and every draw (each
    batch has its own seeded generators), is that of ``items`` itself. An exception raised
    while preparing an item is raised here, at that item; closing the returned generator early
    stops the thread. ``depth`` 0: ``items`` itself, on the calling thread."""
    if depth <= 0:
        yield from items
        return
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for x in items:
                if not put((x, None)):
                    return
            put((_END, None))
        except BaseException as e:  # raised again on the consuming thread
            put((_END, e))

    t = threading.Thread(target=work, name="asr-prefetch", daemon=True)
    t.start()
    try:
        while True:
            x, err = q.get()
            if x is _END:
                if err is not None:
                    raise err
                return
            yield x
    finally:
        stop.set()
        t.join(timeout=5)
