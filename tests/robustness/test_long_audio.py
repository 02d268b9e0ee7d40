"""Hours-long audio: transcribe reads it in bounded memory (a sparse two-hour WAV, of which only
the first chunks are decoded: decoding hours on a CPU is not what is being checked). Training
drops such an utterance by its manifest duration (data.max_duration) without reading it: see
test_train_corrupt.py."""

from __future__ import annotations

import tracemalloc

import pytest

from asr.audio import audio_info
from asr.inference import load_model
from asr.chunks import ChunkConfig
from asr.transcribe import Transcriber
from conftest import record_chunked_reads

from .helpers import sparse_wav

HOURS = 2.0
SR = 8000


class _Stop(Exception):
    pass


class _StopAfter:
    """A progress bar that ends the run after ``n`` decoded chunks."""

    def __init__(self, n: int):
        self.n = n

    def update(self, _seconds: float) -> None:
        self.n -= 1
        if self.n <= 0:
            raise _Stop


@pytest.mark.parametrize("segment", ["fixed", "pause"])
def test_hours_long_file_is_read_in_bounded_memory(model_file, tmp_path, monkeypatch, segment):
    path = sparse_wav(tmp_path / "long.wav", HOURS * 3600, SR)
    assert audio_info(path).duration == HOURS * 3600  # the header is complete, not truncated
    whole_mb = HOURS * 3600 * SR * 4 / 2**20  # float32 samples of the whole file: 220 MiB

    sizes = record_chunked_reads(monkeypatch)
    cfg = ChunkConfig(chunk_seconds=30.0, overlap_seconds=5.0, batch_size=2, segment=segment)
    tr = Transcriber(load_model(model_file), None, cfg)
    tracemalloc.start()
    try:
        for _ in tr.transcribe([str(path)], progress=_StopAfter(4)):
            pass
        raise AssertionError("a two-hour file cannot be done after 4 chunks")
    except _Stop:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if segment == "fixed":  # one chunk, then one stride per chunk
        assert 4 <= len(sizes) <= 8 and max(sizes) <= 30 * SR
    else:  # one second at a time; a file without pauses is cut at most a chunk apart
        assert 4 * 15 <= len(sizes) <= 4 * 31 + 1 and max(sizes) <= SR
    assert peak / 2**20 < 32 < whole_mb, f"peak {peak / 2**20:.0f} MiB"
