"""Streaming recognition with unidirectional models: audio chunks in, partial and final
hypotheses out, the recurrent state carried from chunk to chunk and nothing recomputed.

``stream = recognizer.stream()``; ``stream.accept(samples)`` returns the partial text so far
(incremental greedy decoding, or the best hypothesis of a beam search run online through
flashlight's ``decode_step``); ``stream.finish()`` returns the final :class:`Hypothesis` with
word times (greedy: decoded over the utterance's log-probs; beam: the online search's end). For a
unidirectional model the log-probs are the offline forward's (within float rounding) for any
split of the audio into chunks, so the final hypothesis is the offline one
(``tests/test_stream.py``).

What each part waits for (the latency it adds beyond the chunk itself):
- features: a window (fbank, 25 ms) or half an FFT frame of look-ahead (log-mel/MFCC, 16 ms at
  16 kHz), two frames per delta order (:mod:`asr.stream_features`);
- frame stacking by s: s input frames; the convolution front-end (kernel 2s+1, stride s):
  s frames of look-ahead;
- recurrent layers and the CTC head: nothing (state carried).

Cost per chunk: LSTM layers run step by step here (:class:`_LSTMSteps`, the same cell arithmetic)
rather than through ``torch.lstm``, whose CPU path hands float inputs to oneDNN: that adds a fixed
cost per call, large for a chunk of a few frames (AN4's 4x384 LSTM, one thread: 40 ms chunks took
3.6-7 ms each with it, 1.3 ms without; on whole utterances the two cost the same). The fbank
window and mel matrix are built once (:mod:`asr.stream_features`).

Legend: T frames, F features, D layer width, V vocabulary, s subsampling factor.
"""

from __future__ import annotations

import weakref
from typing import Iterable, Iterator, NamedTuple

import torch

from asr.decode.types import Hypothesis
from asr.errors import UserError
from asr.model import CTCModel, ConvSubsample
from asr.stream_features import IncrementalFeatures


# rnn -> (weights' identity and versions, their transposed copies), shared by the Streams of a model
_TRANSPOSED: "weakref.WeakKeyDictionary[torch.nn.LSTM, tuple]" = weakref.WeakKeyDictionary()


class _LSTMSteps:
    """A one-layer unidirectional LSTM over (T, D) frames from a state ((H,) h and c; None:
    zeros): (T, H) outputs and the new state. The steps of PyTorch's CPU LSTM cell (input
    projection of all frames at once, then per frame gates = h W_hh^T + b_hh + that, gate order
    i, f, g, o), without the fixed per-call cost of its oneDNN path, and with the weights stored
    transposed once ((D, 4H), (H, 4H)): on one CPU thread a (1, H) x (H, 4H) ``addmm`` beats
    ``linear`` with the (4H, H) weight (4x384 LSTM, 3-frame chunk: 1.7-1.8 ms against
    2.6-3.2 ms; ``bench/lstm_step.py``, docs/benchmarks.md "Streaming")."""

    def __init__(self, rnn: torch.nn.LSTM):
        self.H = rnn.hidden_size
        params = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
        key = tuple((p.data_ptr(), p._version) for p in params)  # changed weights: new copies
        cached = _TRANSPOSED.get(rnn)
        if cached is None or cached[0] != key:  # one copy per layer, not one per Stream
            w_ih, w_hh, b_ih, b_hh = (p.detach() for p in params)
            cached = (key, (w_ih.t().contiguous(), w_hh.t().contiguous(), b_ih.clone(),
                            b_hh.clone()))
            _TRANSPOSED[rnn] = cached
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = cached[1]  # (D, 4H), (H, 4H), (4H,) x2

    def __call__(self, x: torch.Tensor, state: tuple | None) -> tuple[torch.Tensor, tuple]:
        H = self.H
        h, c = state if state is not None else (x.new_zeros(H), x.new_zeros(H))
        gx = torch.addmm(self.b_ih, x, self.w_ih)  # (T, 4H)
        outs = []
        for gx_t in gx.unbind(0):
            g = torch.addmm(self.b_hh, h.unsqueeze(0), self.w_hh)[0].add_(gx_t).view(4, H)
            g[:2].sigmoid_()
            g[2].tanh_()
            g[3].sigmoid_()
            i, f, cell, o = g.unbind(0)
            c = (f * c).add_(i * cell)
            h = o * c.tanh()
            outs.append(h)
        return torch.stack(outs), (h, c)  # (T, H); (H,) each


def _layer_runner(rnn: torch.nn.RNNBase, device: torch.device):
    """One recurrent layer as a function (T, D) frames, state -> (T, H), new state."""
    if (isinstance(rnn, torch.nn.LSTM) and device.type == "cpu" and rnn.num_layers == 1
            and rnn.bias and not rnn.proj_size):
        return _LSTMSteps(rnn)

    def run(x: torch.Tensor, state):  # GRU, tanh RNN (no oneDNN path); LSTM on a GPU: cuDNN
        y, state = rnn(x.unsqueeze(0), state)
        return y[0], state
    return run


class StreamingEncoder:
    """A unidirectional :class:`CTCModel` run over feature chunks: (T, F) in, (T', V) log-probs out."""

    def __init__(self, model: CTCModel):
        if model.cfg.bidirectional:
            raise UserError("this model is bidirectional: each output frame depends on the whole "
                            "utterance's future, so it cannot stream; train one with "
                            "model.bidirectional=false (e.g. recipes/an4/conf/stream.yaml)")
        self.model = model.eval()
        self.s = model.cfg.subsample
        self.conv = model.frontend if isinstance(model.frontend, ConvSubsample) else None
        dim = model.frontend.conv.in_channels if self.conv else model.frontend.out_dim // self.s
        # conv: s zero frames of left padding, as the offline convolution's
        device = next(model.parameters()).device
        self.buf = torch.zeros(self.s if self.conv else 0, dim, device=device)
        self.state: list[object] = [None] * len(model.rnns)
        self.layers = [_layer_runner(rnns[0], device) for rnns in model.rnns]
        self.seen = 0  # real input frames so far
        self.done = 0  # conv outputs emitted

    def _frontend(self, final: bool) -> torch.Tensor:
        s = self.s
        if final and self.conv is not None:  # right padding, as the offline convolution's
            self.buf = torch.cat([self.buf, self.buf.new_zeros(s, self.buf.shape[1])])
        elif final and self.buf.shape[0]:  # frame stacking: zero-pad the last group
            self.buf = torch.cat([self.buf, self.buf.new_zeros((-self.buf.shape[0]) % s,
                                                               self.buf.shape[1])])
        if self.conv is None:
            n = self.buf.shape[0] // s
            x, self.buf = self.buf[:n * s], self.buf[n * s:]
            return x.reshape(1, n, s * x.shape[1])
        k = 2 * s + 1
        n = 0 if self.buf.shape[0] < k else 1 + (self.buf.shape[0] - k) // s
        if final:  # the offline model makes ceil(seen / s) outputs, no more
            n = min(n, -(-self.seen // s) - self.done)
        if n == 0:
            return self.buf.new_zeros(1, 0, self.conv.out_dim)
        seg = self.buf[:(n - 1) * s + k].T.unsqueeze(0)  # (1, F, frames)
        c = self.conv.conv
        y = torch.nn.functional.conv1d(seg, c.weight, c.bias, stride=s)
        self.buf = self.buf[n * s:]
        self.done += n
        return self.conv.act(y).transpose(1, 2)  # (1, n, D)

    @torch.inference_mode()
    def accept(self, feats: torch.Tensor, final: bool = False) -> torch.Tensor:
        """Normalised feature frames (T, F) -> log-probs (T', V) of the output frames now complete."""
        m = self.model
        self.buf = torch.cat([self.buf, feats.float().to(self.buf.device)])
        self.seen += feats.shape[0]
        x = self._frontend(final)[0]  # (T', D)
        if x.shape[0] == 0:
            return torch.zeros(0, m.head.out_features)  # (on the CPU)
        for i, (layer, proj, norm) in enumerate(zip(self.layers, m.projs, m.norms)):
            x, self.state[i] = layer(x, self.state[i])
            x = m.dropout(norm(proj(x)))
        return m.log_probs(x).cpu()

    def finish(self) -> torch.Tensor:
        """The last output frames (end padding of the front-end)."""
        return self.accept(torch.zeros(0, self.buf.shape[1]), final=True)


class Stream:
    """One live utterance: ``accept(samples) -> partial text``; ``finish() -> Hypothesis``."""

    def __init__(self, rec, decoder=None):
        """``rec``: an :class:`asr.inference.Recognizer` of a unidirectional model; ``decoder``:
        the final decoder (default: the recognizer's, as ``asr transcribe`` would choose)."""
        if not isinstance(rec.model, CTCModel):
            raise UserError("streaming needs the PyTorch model file (.pt), not an exported .onnx")
        self.encoder = StreamingEncoder(rec.model)
        self.features = IncrementalFeatures(rec.source.extract, rec.cmvn)
        self.rec, self.decoder = rec, decoder or rec.decoder("auto")
        # beam search runs online (flashlight's decode_step) and gives the partial results
        self.online = self.decoder.online() if hasattr(self.decoder, "online") else None
        self.tok = rec.tokenizer
        self.chunks: list[torch.Tensor] = []
        self.tokens: list[int] = []  # greedy best path so far, repeats and blanks removed
        self.last = 0  # previous frame's best token (0: blank)
        self.blank_run = 0  # output frames of blank since the last token
        self._text = (0, "")  # (tokens decoded, their text)

    def _emit(self, log_probs: torch.Tensor) -> None:
        if log_probs.shape[0] == 0:
            return
        self.chunks.append(log_probs)
        if self.online is not None:
            self.online.step(log_probs)
        for t in log_probs.argmax(dim=-1).tolist():
            if t != self.last and t != 0:
                self.tokens.append(t)
            self.last = t
            self.blank_run = self.blank_run + 1 if t == 0 else 0

    def pause_seconds(self) -> float:
        """How long the model has output only blanks after the last token (0 before any token):
        the endpointing signal."""
        return self.blank_run * self.rec.frame_seconds if self.tokens else 0.0

    @property
    def partial(self) -> str:
        """The text of what has been heard so far: the beam search's best hypothesis, or the
        greedy best path."""
        if self.online is not None:
            return self.online.partial()
        if self._text[0] != len(self.tokens):  # the path only grows: decode when it has
            self._text = (len(self.tokens), self.tok.decode(self.tokens))
        return self._text[1]

    def accept(self, samples: torch.Tensor) -> str:
        """Mono samples at the model's rate, float in [-1, 1]; returns the partial text."""
        self._emit(self.encoder.accept(self.features.accept(torch.as_tensor(samples))))
        return self.partial

    def forget(self) -> None:
        """Drop the log-probs heard so far (all blank: silence) and restart the decoder; the
        features and the recurrent state carry on, so what follows decodes as it would have."""
        self.chunks, self.tokens, self.last, self.blank_run = [], [], 0, 0
        self._text = (0, "")
        if self.online is not None:
            self.online = self.decoder.online()

    def log_probs(self) -> torch.Tensor:
        """(T', V) log-probs of the utterance so far."""
        if not self.chunks:
            return torch.zeros(0, len(self.tok.symbols))
        return torch.cat(self.chunks)

    def finish(self) -> Hypothesis:
        """Flush the look-ahead and decode the whole utterance: the final hypothesis, word times included."""
        self._emit(self.encoder.accept(self.features.finish()))
        self._emit(self.encoder.finish())
        lp = self.log_probs()
        if self.online is not None:
            return self.online.finish(lp, self.rec.frame_seconds)
        if lp.shape[0] == 0:
            return Hypothesis(text="", tokens=[], timesteps=[], words=[], score=0.0)
        lens = torch.tensor([lp.shape[0]])
        return self.decoder(lp.unsqueeze(0), lens, self.rec.frame_seconds)[0][0]


class Event(NamedTuple):
    """What :func:`stream_events` yields: a changed partial text, or a final result.

    Attributes:
        final: True for the final result of an utterance.
        text: the partial or final text.
        start: where the utterance began, seconds from the start of the stream.
        time: audio heard so far (partial), or the utterance's end (final), in seconds.
        hyp: the final :class:`Hypothesis` (word times relative to ``start``); None for partials.
    """

    final: bool
    text: str
    start: float
    time: float
    hyp: Hypothesis | None = None


def stream_events(rec, chunks: Iterable[torch.Tensor], decoder=None,
                  endpoint_seconds: float = 0.0, endpoint: str | None = None) -> Iterator[Event]:
    """Recognise a stream of sample chunks (mono, the model's rate) live: a partial event when
    the text changes, a final one per utterance. After ``endpoint_seconds`` of non-speech
    following a word (0: never) the utterance is finalised and the state reset, so an endless
    stream runs in bounded memory; what the look-ahead buffers at that point (silence) is
    dropped. ``endpoint`` says what non-speech is (:func:`default_stream_endpoint` when None):
    ``blank``, the model's own output (only blanks since the last token); ``vad``, silero-vad;
    ``energy``, frames near the noise floor (:mod:`asr.vad`). ``decoder``: default the
    recognizer's (``rec.decoder()``)."""
    rate = rec.cfg.features.sample_rate
    decoder = decoder or rec.decoder("auto")
    clock = _Endpointer(endpoint or default_stream_endpoint(), rate, rec.frame_seconds)
    stream, start, fed, last = Stream(rec, decoder), 0, 0, None
    for samples in chunks:
        text = stream.accept(samples)
        clock.accept(samples)
        fed += samples.numel()
        if text != last:
            last = text
            yield Event(False, text, start / rate, fed / rate)
        if not endpoint_seconds or clock.quiet_seconds(stream) < endpoint_seconds:
            continue
        if stream.tokens:
            hyp = stream.finish()
            yield Event(True, hyp.text, start / rate, fed / rate, hyp)
            stream = Stream(rec, decoder)
        else:
            stream.forget()  # silence: nothing to emit, keep the memory bounded
        start, last = fed, None
        clock.reset()
    hyp = stream.finish()
    if hyp.text or start == 0:
        yield Event(True, hyp.text, start / rate, fed / rate, hyp)


def default_stream_endpoint() -> str:
    """The endpoint detector of ``asr stream`` when none is chosen: the model's blank run
    (docs/benchmarks.md, "Endpointing": it found the most utterance ends, clean and noisy)."""
    return "blank"


class _Endpointer:
    """How long the stream has been silent, by the chosen detector (``blank``: the model's
    blanks since the last token, or since the utterance began)."""

    def __init__(self, name: str, rate: int, frame_seconds: float):
        from asr.vad import PauseClock, check_endpoint, frame_detector

        self.name = check_endpoint(name)
        self.frames = None if name == "blank" else frame_detector(name, rate)
        self.clock, self.frame_seconds = PauseClock(), frame_seconds

    def accept(self, samples: torch.Tensor) -> None:
        if self.frames is not None:
            self.clock.add(self.frames.accept(torch.as_tensor(samples).numpy()))

    def quiet_seconds(self, stream: Stream) -> float:
        if self.frames is None:
            return stream.blank_run * self.frame_seconds
        return self.clock.quiet_seconds()

    def reset(self) -> None:
        self.clock.reset()
