"""``asr stream``: live recognition with a unidirectional model, from an audio file or standard
input (raw 16-bit PCM or a WAV stream), chunk by chunk; partial and final results as they come.

    arecord -f S16_LE -r 16000 -c 1 - | asr stream model.pt -
    sox in.flac -t raw -r 16000 -e signed -b 16 -c 1 - | asr stream model.pt -

On a terminal the partial line is rewritten in place and each final result ends it; otherwise
one JSON object per line: ``{"type": "partial", "text", "time"}`` and ``{"type": "final", "text",
"start", "end", "words"}`` (seconds from the start of the stream). After ``--endpoint-ms`` of
non-speech following a word (by default: output frames that are all blank; ``--endpoint vad``
or ``energy``: :mod:`asr.vad`), the utterance is finalised and the model's state reset, so an
endless stream runs in bounded memory (0: one utterance for the whole input).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
                   help="non-speech this long after a word ends the utterance (800; 0: never)")
    p.add_argument("--endpoint", choices=["blank", "vad", "energy"], default=None,
                   help="what non-speech is: the model's blank output (blank, default), "
                        "silero-vad (vad; pip install 'asr[vad]') or the energy near the noise "
                        "floor (energy)")
    p.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    add_decoder_arguments(p)
    p.set_defaults(func=run)


def _print(event, json_lines: bool, width: int) -> int:
    """Write one event; returns the width of the partial line left on a terminal."""
    if json_lines:
        if event.final:
            words = [{"word": w.word, "start": round(event.start + w.start, 3),
                      "end": round(event.start + w.end, 3), "confidence": round(w.confidence, 3)}
                     for w in event.hyp.words]
            obj = {"type": "final", "text": event.text, "start": round(event.start, 3),
                   "end": round(event.time, 3), "words": words}
        else:
            obj = {"type": "partial", "text": event.text, "time": round(event.time, 3)}
        sys.stdout.write(json.dumps(obj) + "\n")
    else:  # rewrite the partial line in place (its end, if wider than the terminal)
        text = event.text
        if not event.final:
            text = text[-(shutil.get_terminal_size().columns - 1):]
        sys.stdout.write("\r" + text.ljust(width) + ("\n" if event.final else ""))
        sys.stdout.flush()
        return 0 if event.final else len(text)
    sys.stdout.flush()
    return 0


def _chunks(a: argparse.Namespace, rate: int, chunk: int):
    from asr.audio import load_audio, pcm_stream

    if a.input != "-":
        wave = load_audio(a.input, rate)
        return (wave[i:i + chunk] for i in range(0, wave.numel(), chunk))
    got, chunks = pcm_stream(sys.stdin.buffer, a.rate or rate, a.channels, chunk, a.input_format)
    if got != rate:
        raise UserError(f"the input is at {got} Hz and the model at {rate} Hz: resample it "
                        f"first (e.g. sox ... -r {rate})")
    return _until_interrupted(chunks)


def _until_interrupted(chunks):
    """Ctrl-C ends the input (arecord | asr stream): the utterance in progress is finalised."""
    from asr import interrupt

    try:
        for c in chunks:
            interrupt.check()  # a Ctrl-C Python dropped (asr/interrupt.py) ends the input too
            yield c
    except KeyboardInterrupt:
        interrupt.handled()
        return


def run(a: argparse.Namespace) -> int:
    from asr.inference import load_model
    from asr.stream import Stream, stream_events

    rec = load_model(a.model)
    rate = rec.cfg.features.sample_rate
    decoder = rec.decoder(a.decoder)
    Stream(rec, decoder)  # a bidirectional model stops here, with the reason, before any input
    if a.endpoint is not None:
        from asr.vad import check_endpoint
        check_endpoint(a.endpoint)  # silero-vad missing: one line, before any input
    json_lines = a.json or not sys.stdout.isatty()
    chunk = max(1, int(round(a.chunk_ms * rate / 1000)))
    width = 0
    try:
        for event in stream_events(rec, _chunks(a, rate, chunk), decoder, a.endpoint_ms / 1000,
                                   a.endpoint):
            width = _print(event, json_lines, width)
    except BrokenPipeError:  # e.g. `asr stream ... | head -1`: stop quietly, say why once
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("asr stream: the output pipe was closed", file=sys.stderr)
        return 1
    return 0
