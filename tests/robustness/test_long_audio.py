"""Hours-long audio: transcribe reads it in bounded memory, and nothing grows from chunk to chunk.

A sparse two-hour WAV, of which the first 48 chunks (20 minutes) are decoded: decoding hours on
a CPU is not what is being checked. Per-chunk growth is measured where a leak would show:
process RSS (/proc/self/statm, which sees torch's allocations), the live torch tensors (gc), and
the transcriber's own state. Training drops such an utterance by its manifest duration
(data.max_duration) without reading it: see test_train_corrupt.py."""

from __future__ import annotations

import gc
import os
import statistics
import tracemalloc

import pytest
import torch

from asr.audio import audio_info
from asr.inference import load_model
from asr.chunks import ChunkConfig
from asr.transcribe import Transcriber
from conftest import record_chunked_reads

from .helpers import sparse_wav

HOURS = 2.0
SR = 8000
CHUNKS = 48  # decoded chunks (fixed: 25 s strides; pause: 30 s segments of a silent file)
EARLY = 8  # the state after this many chunks is the baseline for growth
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def live_tensors() -> tuple[int, int]:
    """(number of live torch tensors, bytes of their distinct storages)."""
    gc.collect()
    ts = [o for o in gc.get_objects() if issubclass(type(o), torch.Tensor)]
    storages = {}
    for t in ts:
        try:
            st = t.untyped_storage()
            storages[st.data_ptr()] = st.nbytes()
        except (RuntimeError, NotImplementedError):  # meta, sparse...
            pass
    return len(ts), sum(storages.values())


def held_state(tr: Transcriber) -> dict[str, int]:
    """Sizes of the containers the transcriber (and its decoder) holds: none may grow."""
    sizes = {f"tr.{k}": len(v) for k, v in vars(tr).items() if hasattr(v, "__len__")}
    sizes |= {f"tr.decoder.{k}": len(v) for k, v in vars(tr.decoder).items()
              if hasattr(v, "__len__") and not isinstance(v, (str, bytes))}
    return sizes


def generator_state(gen) -> dict[str, int]:
    """Sizes of the running ``transcribe`` generator's pending results, per-file stitchers and
    batch. Read once, last: on Python < 3.13 ``f_locals`` keeps a snapshot of the locals alive."""
    frame = gen.gi_frame.f_locals
    return {k: len(frame[k]) for k in ("done", "states", "batch")}


class _Stop(Exception):
    pass


class _Probe:
    """A progress bar that stops tracemalloc after 4 chunks, samples RSS after every chunk,
    records the live tensors and the transcriber's state after EARLY and CHUNKS chunks, and then
    the generator's, and ends the run."""

    def __init__(self, tr: Transcriber):
        self.tr, self.gen, self.n = tr, None, 0
        self.rss: list[float] = []
        self.tensors: dict[int, tuple[int, int]] = {}
        self.state: dict[int, dict[str, int]] = {}
        self.peak = None
        self.pending: dict[str, int] = {}

    def update(self, _seconds: float) -> None:
        self.n += 1
        self.rss.append(rss_mib())
        if self.n == 4:
            self.peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        if self.n in (EARLY, CHUNKS):
            self.tensors[self.n] = live_tensors()
            self.state[self.n] = held_state(self.tr)
        if self.n >= CHUNKS:
            self.pending = generator_state(self.gen)
            raise _Stop


@pytest.mark.parametrize("segment", ["fixed", "pause"])
def test_hours_long_file_is_read_in_bounded_memory(model_file, tmp_path, monkeypatch, segment):
    path = sparse_wav(tmp_path / "long.wav", HOURS * 3600, SR)
    assert audio_info(path).duration == HOURS * 3600  # the header is complete, not truncated
    whole_mb = HOURS * 3600 * SR * 4 / 2**20  # float32 samples of the whole file: 220 MiB

    sizes = record_chunked_reads(monkeypatch)
    cfg = ChunkConfig(chunk_seconds=30.0, overlap_seconds=5.0, batch_size=2, segment=segment)
    tr = Transcriber(load_model(model_file), None, cfg)
    probe = _Probe(tr)
    gc.collect()
    before = rss_mib()
    tracemalloc.start()
    probe.gen = tr.transcribe([str(path)], progress=probe)
    try:
        for _ in probe.gen:
            pass
        raise AssertionError(f"a two-hour file cannot be done after {CHUNKS} chunks")
    except _Stop:
        pass
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        probe.gen.close()
    if segment == "fixed":  # one chunk, then one stride per chunk
        assert CHUNKS <= len(sizes) <= 2 * CHUNKS and max(sizes) <= 30 * SR
    else:  # one second at a time; a file without pauses is cut at most a chunk apart
        assert CHUNKS * 15 <= len(sizes) <= CHUNKS * 31 + 1 and max(sizes) <= SR
    # numpy sample buffers of the first 4 chunks (tracemalloc sees numpy, not torch)
    assert probe.peak / 2**20 < 32 < whole_mb, f"peak {probe.peak / 2**20:.0f} MiB"
    # everything the process holds, torch included, sampled after every chunk
    assert max(probe.rss) - before < 128 < whole_mb, \
        f"RSS {before:.0f} MiB before, peak {max(probe.rss):.0f} MiB"

    # Nothing grows per chunk. RSS: the median of the last 10 samples against that of chunks
    # 4..13 (the allocator moves it by tens of MiB either way, a leak only up; keeping every
    # chunk's 30 s of 16 kHz samples would add 75 MiB). Tensors: a single tensor kept per batch
    # (20 batches) shows, however small.
    grow = statistics.median(probe.rss[-10:]) - statistics.median(probe.rss[3:13])
    assert grow < 24, f"RSS grew {grow:.1f} MiB from chunk ~{EARLY} to {CHUNKS}: {probe.rss}"
    (n0, b0), (n1, b1) = probe.tensors[EARLY], probe.tensors[CHUNKS]
    assert n1 <= n0 + 2 and b1 <= b0 + 2**20, \
        f"live tensors {n0} -> {n1}, {b0 / 2**20:.1f} -> {b1 / 2**20:.1f} MiB after " \
        f"{EARLY} -> {CHUNKS} chunks"
    assert probe.state[CHUNKS] == probe.state[EARLY], probe.state
    # one file: its stitcher, no finished result waiting, and the batch being decoded
    assert probe.pending == {"done": 0, "states": 1, "batch": cfg.batch_size}, probe.pending
