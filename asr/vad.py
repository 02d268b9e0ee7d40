"""Speech or not, per 10 ms frame, online: the voice activity detectors that find pauses for
endpointing (``asr stream``) and long-audio segmentation (``asr transcribe``).

- ``energy``: a frame is speech when its energy is more than ``margin_db`` above the noise floor
  (the 10th percentile of the last 10 s of frames; :mod:`asr.segment`).
- ``vad``: silero-vad's network (the optional ``silero-vad`` package, which ships its weights:
  nothing is downloaded), over 32 ms windows at 16 kHz, with its own hysteresis: speech starts
  at probability >= ``threshold`` and ends below ``threshold - 0.15``.

A third signal, the model's own run of blank outputs, needs the model and lives with it
(:class:`asr.stream.Stream`). :class:`PauseClock` turns per-frame decisions into "speech heard,
then this much silence", the endpointing signal. On AN4 utterances with real gaps
(docs/benchmarks.md, "Endpointing"), silero-vad made the fewest false cuts everywhere (0-1 cuts
inside a word where energy made up to 19), but its WER gain was not consistent (clean: 14.04%
against energy's 13.65%; babble 20 dB: 39.18 against 41.52); the model's blanks found the most
utterance ends in clean streaming. The defaults stay energy (``asr transcribe``) and blank (``asr stream``); silero-vad
is one option away, and needs its package (``pip install 'asr[vad]'``).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import torch

from asr.errors import UserError
from asr.segment import DIGITAL_SILENCE_DB, FLOOR_FRAMES, FLOOR_PERCENTILE, FRAME_SECONDS

ENDPOINTS = ("vad", "energy", "blank")
VAD_RATE = 16000
VAD_WINDOW = 512  # samples at 16 kHz: 32 ms, silero-vad's window
NEG_OFFSET = 0.15  # speech ends below threshold - this (silero-vad's own hysteresis)


def vad_available() -> bool:
    """Whether the silero-vad package is installed."""
    return importlib.util.find_spec("silero_vad") is not None


def check_endpoint(name: str) -> str:
    """``name`` if it is a known endpoint detector and can run here, else a :class:`UserError`."""
    if name not in ENDPOINTS:
        raise UserError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got '{name}'")
    if name == "vad" and not vad_available():
        raise UserError("the vad endpoint needs the silero-vad package: pip install 'asr[vad]' "
                        "(or choose --endpoint energy)")
    return name


def _load_silero():
    check_endpoint("vad")
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from silero_vad import load_silero_vad
        # The ONNX file inside the package, on ONNX Runtime (one thread): its TorchScript twin
        # on torch's thread pool took 60 ms a window instead of 0.1 ms while a training run
        # shared the CPUs.
        model = load_silero_vad(onnx=True)
    torch.set_num_threads(threads)  # importing silero_vad sets one thread for the process
    return model


class SileroVAD:
    """silero-vad over 16 kHz mono samples fed in pieces of any size: the speech probability
    of each complete 512-sample window, the network's state carried between windows."""

    _model = None  # loaded once per process; each instance resets the state it uses

    def __init__(self):
        if SileroVAD._model is None:
            SileroVAD._model = _load_silero()
        self.model = SileroVAD._model
        self.model.reset_states()
        self.buf = np.zeros(0, dtype=np.float32)

    @torch.inference_mode()
    def accept(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        """Probabilities (W,) of the windows completed by ``x``; ``final``: zero-pad the last one."""
        self.buf = np.concatenate([self.buf, np.asarray(x, dtype=np.float32)])
        if final and len(self.buf) % VAD_WINDOW:
            self.buf = np.concatenate([self.buf, np.zeros(-len(self.buf) % VAD_WINDOW, np.float32)])
        n = len(self.buf) // VAD_WINDOW
        probs = np.empty(n)
        for i in range(n):
            w = torch.from_numpy(self.buf[i * VAD_WINDOW:(i + 1) * VAD_WINDOW])
            probs[i] = float(self.model(w, VAD_RATE))
        self.buf = self.buf[n * VAD_WINDOW:]
        return probs


class VadFrames:
    """silero-vad decisions per 10 ms frame of mono audio at ``rate`` (resampled to 16 kHz):
    frame k (10k-10k+10 ms) takes the decision of the window holding its start."""

    def __init__(self, rate: int, threshold: float = 0.5):
        if not 0 < threshold < 1:
            raise UserError(f"vad threshold must be between 0 and 1, got {threshold}")
        self.rate, self.threshold = rate, threshold
        self.vad = SileroVAD()
        self.speaking = False
        self.speech = np.zeros(0, bool)  # decisions of the windows from window w0 on
        self.probs = np.zeros(0)  # their probabilities
        self.w0 = 0
        self.frames = 0  # frames given out so far
        self.fed = 0  # samples at ``rate`` fed so far
        self.last_probs = np.zeros(0)  # the probabilities of the frames of the last call

    def accept(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        """Speech decisions (N,) of the 10 ms frames now covered by whole windows (``final``:
        all frames fed)."""
        from asr.audio import resample

        self.fed += len(x)
        x16 = resample(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), self.rate,
                       VAD_RATE).numpy() if len(x) else np.zeros(0, np.float32)
        probs = self.vad.accept(x16, final)
        speech = np.empty(len(probs), bool)
        for i, p in enumerate(probs):  # hysteresis, as silero-vad's get_speech_timestamps
            self.speaking = p >= self.threshold or (self.speaking and
                                                    p >= self.threshold - NEG_OFFSET)
            speech[i] = self.speaking
        self.speech = np.concatenate([self.speech, speech])
        self.probs = np.concatenate([self.probs, probs])
        covered = min((self.w0 + len(self.speech)) * VAD_WINDOW * 100 // VAD_RATE,  # whole frames
                      self.fed * 100 // self.rate)
        n = max(0, covered - self.frames)
        if n == 0 or len(self.speech) == 0:
            self.last_probs = np.zeros(0)
            return np.zeros(0, bool)
        win = (np.arange(self.frames, self.frames + n) * VAD_RATE // 100) // VAD_WINDOW
        idx = np.minimum(win - self.w0, len(self.speech) - 1)
        out = self.speech[idx]
        self.last_probs = self.probs[idx]
        self.frames += n
        keep = int(win[-1] - self.w0)  # windows before the last one used are done
        self.speech, self.probs, self.w0 = self.speech[keep:], self.probs[keep:], self.w0 + keep
        return out


class EnergyFrames:
    """Energy decisions per 10 ms frame of mono audio at ``rate``: above the floor of the last
    10 s by ``margin_db`` (the online form of :mod:`asr.segment`'s rule)."""

    def __init__(self, rate: int, margin_db: float = 16.0):
        if margin_db <= 0:
            raise UserError(f"energy margin must be > 0 dB, got {margin_db}")
        self.hop = max(1, round(rate * FRAME_SECONDS))
        self.margin = margin_db
        self.buf = np.zeros(0)
        self.history = np.zeros(0)

    def accept(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        from asr.segment import frame_energies_db

        self.buf = np.concatenate([self.buf, np.asarray(x, dtype=np.float64)])
        e = frame_energies_db(self.buf, self.hop)
        self.buf = self.buf[len(e) * self.hop:]
        self.history = np.concatenate([self.history, e])[-FLOOR_FRAMES:]
        live = self.history[self.history > DIGITAL_SILENCE_DB]
        floor = np.percentile(live, FLOOR_PERCENTILE) if len(live) else np.inf
        return e > floor + self.margin


def frame_detector(name: str, rate: int, margin_db: float = 16.0, threshold: float = 0.5):
    """The online per-frame detector called ``name`` (``energy`` or ``vad``)."""
    check_endpoint(name)
    if name == "vad":
        return VadFrames(rate, threshold)
    if name == "energy":
        return EnergyFrames(rate, margin_db)
    raise ValueError(f"{name} has no per-frame detector of its own")  # blank: the model's


class PauseClock:
    """Speech decisions per frame in, the endpointing signal out: whether speech was heard
    since the last :meth:`reset`, and how much non-speech has followed it."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.heard = False
        self.quiet = 0  # frames of non-speech at the end (since speech, or since reset)

    def add(self, speech: np.ndarray) -> None:
        idx = np.flatnonzero(speech)
        if len(idx):
            self.heard = True
            self.quiet = len(speech) - 1 - int(idx[-1])
        else:
            self.quiet += len(speech)

    def pause_seconds(self) -> float:
        """Non-speech after speech (0 before any), seconds."""
        return self.quiet * FRAME_SECONDS if self.heard else 0.0

    def quiet_seconds(self) -> float:
        """Non-speech at the end, seconds, heard speech or not."""
        return self.quiet * FRAME_SECONDS
