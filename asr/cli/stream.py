"""``asr stream``: live recognition with a unidirectional model, from an audio file or standard
input (raw 16-bit PCM or a WAV stream), chunk by chunk; partial and final results as they come.

    arecord -f S16_LE -r 16000 -c 1 - | asr stream model.pt -
    sox in.flac -t raw -r 16000 -e signed -b 16 -c 1 - | asr stream model.pt -

On a terminal the partial line is rewritten in place and each final result ends it; otherwise
one JSON object per line: ``{"type": "partial", "text", "time"}`` and ``{"type": "final", "text",
"start", "end", "words"}`` (seconds from the start of the stream). After ``--endpoint-ms`` of
output frames that are all blank following a word, the utterance is finalised and the model's
state reset, so an endless stream runs in bounded memory (0: one utterance for the whole input).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from asr.cli.common import NONNEG_FLOAT, POSITIVE_FLOAT, POSITIVE_INT, add_decoder_arguments
from asr.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("stream", help="live recognition from a file or stdin (unidirectional models)")
    p.add_argument("model", help="model file of a unidirectional model (model.pt)")
    p.add_argument("input", help="audio file, or - for standard input (raw PCM or WAV)")
    p.add_argument("--chunk-ms", type=POSITIVE_FLOAT, default=100.0,
                   help="audio per step in milliseconds (100)")
    p.add_argument("--rate", type=POSITIVE_INT, default=None,
                   help="raw PCM on stdin: sample rate (default: the model's)")
    p.add_argument("--channels", type=POSITIVE_INT, default=1, help="raw PCM on stdin: channels (1)")
    p.add_argument("--input-format", choices=["auto", "raw", "wav"], default="auto",
                   help="stdin: raw 16-bit little-endian PCM, a WAV stream, or auto (by header)")
    p.add_argument("--endpoint-ms", type=NONNEG_FLOAT, default=800.0,
                   help="blank output this long after a word ends the utterance (800; 0: never)")
    p.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    add_decoder_arguments(p)
    p.set_defaults(func=run)


class _Printer:
    """Partial and final results: in place on a terminal, else JSON lines."""

    def __init__(self, json_lines: bool):
        self.json, self.width, self.last = json_lines, 0, None

    def partial(self, text: str, time: float) -> None:
        if text == self.last:
            return
        self.last = text
        if self.json:
            self._line({"type": "partial", "text": text, "time": round(time, 3)})
        else:
            sys.stdout.write("\r" + text.ljust(self.width))
            self.width = len(text)
            sys.stdout.flush()

    def final(self, hyp, offset: float, end: float) -> None:
        self.last = None
        if self.json:
            words = [{"word": w.word, "start": round(offset + w.start, 3),
                      "end": round(offset + w.end, 3), "confidence": round(w.confidence, 3)}
                     for w in hyp.words]
            self._line({"type": "final", "text": hyp.text, "start": round(offset, 3),
                        "end": round(end, 3), "words": words})
        else:
            sys.stdout.write("\r" + hyp.text.ljust(self.width) + "\n")
            self.width = 0
            sys.stdout.flush()

    def _line(self, obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def _chunks(a: argparse.Namespace, rate: int, chunk: int):
    from asr.audio import load_audio, pcm_stream

    if a.input != "-":
        wave = load_audio(a.input, rate)
        return (wave[i:i + chunk] for i in range(0, wave.numel(), chunk))
    got, chunks = pcm_stream(sys.stdin.buffer, a.rate or rate, a.channels, chunk, a.input_format)
    if got != rate:
        raise UserError(f"the input is at {got} Hz and the model at {rate} Hz: resample it "
                        f"first (e.g. sox ... -r {rate})")
    return chunks


def run(a: argparse.Namespace) -> int:
    from asr.inference import load_model
    from asr.stream import Stream

    rec = load_model(a.model)
    rate = rec.cfg.features.sample_rate
    decoder = rec.decoder(a.decoder)
    stream = Stream(rec, decoder)  # a bidirectional model stops here, with the reason
    out = _Printer(a.json or not sys.stdout.isatty())
    chunk = max(1, int(round(a.chunk_ms * rate / 1000)))
    start = fed = 0  # samples: where the utterance began, and fed in all
    try:
        for samples in _chunks(a, rate, chunk):
            out.partial(stream.accept(samples), (fed + samples.numel()) / rate)
            fed += samples.numel()
            if a.endpoint_ms and stream.pause_seconds() * 1000 >= a.endpoint_ms:
                out.final(stream.finish(), start / rate, fed / rate)
                stream, start = Stream(rec, decoder), fed
        hyp = stream.finish()
        if hyp.text or start == 0:
            out.final(hyp, start / rate, fed / rate)
    except BrokenPipeError:  # e.g. `asr stream ... | head -1`: stop quietly, say why once
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("asr stream: the output pipe was closed", file=sys.stderr)
        return 1
    return 0
