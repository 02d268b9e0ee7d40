"""Long-form transcription: audio files of any length -> timed words (a :class:`Transcript`).

Each file is cut into chunks (:mod:`asr.chunks`), chunks from several files share a forward
batch (``ChunkConfig.batch_size`` chunks, through :meth:`Recognizer.forward_waves`), each chunk
is decoded by the same decoders as ``asr evaluate``, its tokens are force-aligned, and the
chunks' words are stitched into the file's words. A file no longer than the model's longest
training utterance (recorded in the model file by ``asr train``; ``--chunk-seconds`` for a model
without it, and at most that) is one chunk: it gets the text and word times ``asr evaluate``
gives it. A longer one holds several utterances, and is cut at pauses: decoded whole, 10-25 s
files of AN4 utterances got twice the WER (docs/benchmarks.md). A file that cannot be read is
reported and skipped; the others still go through.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, NamedTuple

from asr.interrupt import check as check_interrupt
from asr.chunks import Chunk, ChunkConfig, Stitcher, iter_chunks
from asr.decode.align import align_tokens, group_spans, timed_word
from asr.decode.greedy import GreedyDecoder
from asr.decode.types import Hypothesis
from asr.errors import UserError


class Transcript(NamedTuple):
    path: str
    duration: float  # seconds
    hypothesis: Hypothesis  # words and times are absolute (seconds from the file's start)


class Transcriber:
    """Decode long recordings chunk by chunk with a :class:`~asr.inference.Recognizer`.

    Pause segments do not overlap: their words are kept as they are. Overlapping fixed chunks
    are joined at whole words (:func:`asr.chunks.choose_cut`). Word times and confidences come
    from each chunk's forced alignment.

    Args:
        rec: the model. decoder: a :class:`~asr.decode.beam.BeamDecoder`, or None for greedy.
        cfg: chunking (``ChunkConfig()`` when None).

    Example:
        >>> tr = Transcriber(asr.load_model("model.pt"), None, ChunkConfig(chunk_seconds=30))
        >>> for path, result in tr.transcribe(["talk.flac"]):
        ...     print(result.hypothesis.text)
    """

    def __init__(self, rec, decoder=None, cfg: ChunkConfig | None = None):
        self.rec = rec
        self.decoder = decoder or GreedyDecoder(rec.tokenizer)
        self.cfg = cfg or ChunkConfig()
        if self.cfg.whole_seconds is None and rec.longest_utterance:
            # A file no longer than the model's training utterances is one utterance-like input.
            self.cfg = dataclasses.replace(self.cfg, whole_seconds=rec.longest_utterance)

    def transcribe(self, paths: list[str], progress=None
                   ) -> Iterator[tuple[str, Transcript | UserError]]:
        """Yield ``(path, Transcript)`` or ``(path, UserError)`` for each path, in input order.

        Args:
            progress: optional tqdm-like bar, advanced by the seconds of audio decoded.
        """
        done: dict[int, Transcript | UserError] = {}
        states: dict[int, Stitcher] = {}
        batch: list[tuple[int, Chunk]] = []
        nxt = 0
        for i, chunk in self._stream(paths, done):
            if chunk is not None:
                states.setdefault(i, Stitcher(paths[i]))
                batch.append((i, chunk))
                if len(batch) >= self.cfg.batch_size:
                    self._run(batch, states, done, progress)
                    batch = []
            else:
                states.pop(i, None)  # failed part way: drop what was decoded
                batch = [(j, c) for j, c in batch if j != i]
            while nxt in done:
                yield paths[nxt], done.pop(nxt)
                nxt += 1
        if batch:
            self._run(batch, states, done, progress)
        while nxt < len(paths):
            yield paths[nxt], done.pop(nxt)
            nxt += 1

    def _stream(self, paths: list[str], done: dict) -> Iterator[tuple[int, Chunk | None]]:
        sr = self.rec.cfg.features.sample_rate
        for i, p in enumerate(paths):
            try:
                for chunk in iter_chunks(p, sr, self.cfg):
                    yield i, chunk
            except UserError as e:
                done[i] = e
                yield i, None

    def _run(self, batch: list[tuple[int, Chunk]], states: dict[int, Stitcher],
             done: dict, progress) -> None:
        check_interrupt()  # a Ctrl-C Python dropped is raised here (asr/interrupt.py)
        rec = self.rec
        fs, sr = rec.frame_seconds, rec.cfg.features.sample_rate
        log_probs, out_lens = rec.forward_waves([c.wave for _, c in batch])  # (B, T', V), (B,)
        hyps = [nb[0] for nb in self.decoder(log_probs, out_lens)]  # words come from the spans
        for b, ((i, c), hyp) in enumerate(zip(batch, hyps)):
            st = states[i]
            seconds = c.wave.shape[0] / sr
            base = round(c.start / fs)  # the chunk's first frame, counted from the file start
            spans = [s._replace(start=base + s.start, end=base + s.end)
                     for s in align_tokens(log_probs[b, :int(out_lens[b])], hyp.tokens)]
            st.add(group_spans(spans, rec.tokenizer), c.start / fs, (c.start + seconds) / fs,
                   c.first, c.last, self.cfg.overlap > 0)
            st.score += hyp.score
            st.chunks += 1
            st.text = hyp.text
            st.duration = c.start + seconds
            if progress is not None:
                progress.update(seconds - (0 if c.first else self.cfg.overlap))
            if c.last:
                done[i] = self._finish(st)
                del states[i]

    def _finish(self, st: Stitcher) -> Transcript:
        fs, tok = self.rec.frame_seconds, self.rec.tokenizer
        words = [timed_word(w, ss, fs) for w, ss in st.kept]
        text = st.text if st.chunks == 1 else " ".join(w.word for w in words)
        tokens, steps = [], []
        sep = tok.symbols.index(tok.separator) if tok.separator in tok.symbols else None
        for n, (_, ss) in enumerate(st.kept):
            if n and sep is not None:
                tokens.append(sep)
                steps.append(st.kept[n - 1][1][-1].end)
            tokens += [s.token for s in ss]
            steps += [s.start for s in ss]
        return Transcript(st.path, st.duration, Hypothesis(text, tokens, steps, words, st.score))
