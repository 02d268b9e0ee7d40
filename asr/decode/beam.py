"""CTC beam search with an optional lexicon and n-gram LM: flashlight-text through torchaudio.

Two modes, as ``torchaudio.models.decoder.ctc_decoder``:

* lexicon-constrained (``lexicon`` set): only lexicon words come out; ``lm`` is a word n-gram
  (ARPA or KenLM binary, e.g. from ``asr lm build``) scored at each word end.
* lexicon-free (``lexicon=""``): any token sequence; ``lm``, if given, is a *token*-level
  n-gram whose vocabulary is the model's symbols (flashlight scores it at every token).

Tokens are the model's symbols in id order, so flashlight ids equal ours (blank ``<blank>`` = 0).
The silence token is the tokenizer's word separator, ``|`` for character models (lexicon spellings
end in it, as ``Tokenizer.spell`` writes them); sentencepiece, phone and word models have none, and
the blank stands in for it (fairseq's convention), so ``sil_score`` then applies to blanks between
words. torchaudio's ``ctc_decoder`` builds the search (lexicon trie, LM, options); the search
itself runs on the flashlight decoder it holds (``decoder``: ``decode_begin`` / ``decode_step`` /
``decode_end``) and its results are read here, since torchaudio's call turns every final
hypothesis of the beam into tensors in Python. Sentencepiece words are delimited by the ``▁``
mark of their first piece, in lexicon-free mode too.

Two details differ from calling ``ctc_decoder`` directly: character models are trained without a
``|`` after the last word, so in lexicon mode one closing ``|`` frame is appended (otherwise the
last word never completes and is dropped); and a token-level LM gets its dictionary in symbol order
(torchaudio builds it from an unordered map, which scrambles token ids against LM words).

Legend: B batch, T' output frames, V vocabulary.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asr.decode.align import check_log_probs, word_timings
from asr.decode.types import Hypothesis
from asr.errors import UserError
from asr.tokenizer import BLANK


@dataclass
class BeamConfig:
    """Beam search settings (``decode.yaml`` holds one).

    Attributes:
        beam_size: hypotheses kept after each frame.
        beam_size_token: tokens tried per frame (the most likely first); 0 tries all.
        beam_threshold: prune hypotheses this far (log domain) below the best. An N-best
            list wants a wider search (0 tokens = all, 25): the defaults keep fewer texts.
            The defaults (8 tokens, 10) were chosen on AN4 dev with two character models:
            every setting from (all, 25) down to (4, 10) gave the same WER, and (8, 10) is
            6.3-6.5x faster than (all, 25) in interleaved runs; a threshold of 5 changed the
            result (docs/benchmarks.md, ``bench/decode.py --prune-grid``).
        lm_weight: LM score multiplier. word_score: added per emitted word (insertion bonus).
        unk_score: added per out-of-lexicon word; -inf forbids them (lexicon mode only).
        sil_score: added per silence token.
        nbest: hypotheses returned per utterance (distinct texts).
        lexicon: lexicon file (``word t1 t2 ...``); "" decodes lexicon-free.
        lm: ARPA or KenLM binary file; "" decodes without an LM.
        log_add: merge equal hypotheses by log-add instead of max.
    """

    beam_size: int = 50
    beam_size_token: int = 8
    beam_threshold: float = 10.0
    lm_weight: float = 0.5
    word_score: float = 0.0
    unk_score: float = -math.inf
    sil_score: float = 0.0
    nbest: int = 1
    lexicon: str = ""
    lm: str = ""
    log_add: bool = False

    def __post_init__(self) -> None:
        if self.beam_size < 1 or self.nbest < 1 or self.beam_size_token < 0:
            raise ValueError("beam_size and nbest must be >= 1, beam_size_token >= 0")
        if self.nbest > self.beam_size:
            raise ValueError(f"nbest ({self.nbest}) cannot exceed beam_size ({self.beam_size})")

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ libraries write there directly) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def silence_token(tokenizer) -> str:
    """The silence token flashlight uses: the tokenizer's word separator (``|`` for character
    models), else the blank."""
    sep = tokenizer.separator
    return sep if sep is not None and sep in tokenizer.symbols else BLANK


def check_lexicon(path: str, symbols: list[str]) -> None:
    """Raise UserError naming the line when a lexicon spelling uses a token the model lacks."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"lexicon file not found: {p}")
    known = set(symbols)
    n_words = 0
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise UserError(f"{p}:{n}: lexicon line needs a word and its spelling")
            bad = [t for t in parts[1:] if t not in known]
            if bad:
                raise UserError(f"{p}:{n}: token(s) {' '.join(bad)} of '{parts[0]}' are not in "
                                "the model's vocabulary")
            n_words += 1
    if not n_words:
        raise UserError(f"lexicon file is empty: {p}")


def token_starts(frame_tokens: list[int]) -> list[tuple[int, int]]:
    """``(step, token)`` where each non-blank token starts in flashlight's one-token-per-step
    list (a token that differs from the step before), as torchaudio collapses it."""
    out, prev = [], -1
    for step, tok in enumerate(frame_tokens):
        if tok != prev and tok != 0:
            out.append((step, tok))
        prev = tok
    return out


class BeamDecoder:
    """Beam-search CTC log-probs into n-best :class:`Hypothesis` lists.

    Example:
        >>> dec = BeamDecoder(rec.tokenizer, BeamConfig(lexicon="lex.txt", lm="3gram.arpa"))
        >>> nbest = dec(log_probs, lens, rec.frame_seconds)  # list (B) of lists (nbest)
        >>> nbest[0][0].text
    """

    def __init__(self, tokenizer, cfg: BeamConfig):
        from torchaudio.models.decoder import ctc_decoder

        self.tokenizer = tokenizer
        self.cfg = cfg
        symbols = tokenizer.symbols
        if symbols[0] != BLANK:
            raise UserError("the tokenizer's symbol 0 must be the blank")
        if cfg.lexicon and tokenizer.lexicon_free:
            # flashlight's lexicon search reads a one-token word spiking over two frames as two
            # words (test_beam.py shows it; on AN4: 17 insertions instead of 3).
            raise UserError(f"a {tokenizer.kind} model decodes without a lexicon: its tokens "
                            "are the words, and an LM applies to them directly (drop the "
                            "lexicon)")
        if cfg.lexicon:
            check_lexicon(cfg.lexicon, symbols)
        if cfg.lm and not Path(cfg.lm).is_file():
            raise UserError(f"language model file not found: {cfg.lm}")
        try:
            with _quiet_stderr(), tempfile.TemporaryDirectory() as tmp:  # KenLM prints progress
                lm_dict = None
                if cfg.lm and not cfg.lexicon:
                    # A token LM's word ids must equal token ids; torchaudio would build that
                    # dictionary from an unordered map, so give it the symbols in order.
                    lm_dict = os.path.join(tmp, "tokens.txt")
                    Path(lm_dict).write_text("".join(f"{s}\n" for s in symbols), encoding="utf-8")
                self._decoder = ctc_decoder(
                    lexicon=cfg.lexicon or None, tokens=list(symbols), lm=cfg.lm or None,
                    lm_dict=lm_dict, beam_size=cfg.beam_size,
                    beam_size_token=cfg.beam_size_token or None,
                    beam_threshold=cfg.beam_threshold, lm_weight=cfg.lm_weight,
                    word_score=cfg.word_score, unk_score=cfg.unk_score, sil_score=cfg.sil_score,
                    log_add=cfg.log_add, blank_token=BLANK, sil_token=silence_token(tokenizer),
                    unk_word="<unk>")
        except (RuntimeError, ValueError, IndexError):  # KenLM's and flashlight's own texts
            what = (f"the language model {cfg.lm} (not an ARPA or KenLM binary file it can read, "
                    "or its words do not fit the lexicon)") if cfg.lm else \
                f"the lexicon {cfg.lexicon}"
            raise UserError(f"cannot build the beam decoder from {what}") from None
        self._silence = symbols.index(silence_token(tokenizer))
        # Lexicon spellings end in the separator, but the model is trained without one after
        # the last word: one closing separator frame lets that word complete.
        self._pad_silence = bool(cfg.lexicon) and symbols[self._silence] != BLANK
        self._pad = torch.full((1, len(symbols)), -1e4, dtype=torch.float32)
        self._pad[0, self._silence] = 0.0
        # flashlight's own decoder: searched and read directly, since torchaudio's call turns
        # each of the beam's final hypotheses into tensors in Python (306 -> 250 us per AN4
        # utterance; docs/benchmarks.md, session 13)
        self._fl = getattr(self._decoder, "decoder", None)
        if self._fl is None or not hasattr(self._decoder, "word_dict"):
            raise UserError("this torchaudio's ctc_decoder holds no flashlight decoder; "
                            "install the torchaudio version setup.sh installs")

    def __call__(self, log_probs: torch.Tensor, lens: torch.Tensor | None = None,
                 frame_seconds: float = 0.0) -> list[list[Hypothesis]]:
        """Decode a batch.

        Args:
            log_probs: (B, T', V) log-posteriors (any device; decoded on CPU).
            lens: (B,) valid frames; None means all T'.
            frame_seconds: duration of one output frame, for word times; 0 skips word timing.

        Returns:
            per utterance, up to ``nbest`` hypotheses with distinct texts, best first; word
            times and confidences come from forced alignment (:mod:`asr.decode.align`).
        """
        check_log_probs(log_probs, self.tokenizer)
        em = log_probs.detach().float().cpu()
        B, T, V = em.shape
        lens = torch.full((B,), T, dtype=torch.long) if lens is None else lens.cpu().long()
        out = []
        for b in range(B):
            n = int(lens[b])
            seen: set[str] = set()
            best: list[Hypothesis] = []
            for r in self._search(em[b, :n]):
                hyp = self._hypothesis(r, em[b, :n], frame_seconds)
                if hyp.text in seen:
                    continue
                seen.add(hyp.text)
                best.append(hyp)
                if len(best) == self.cfg.nbest:
                    break
            out.append(best or [Hypothesis("", [], [], [], 0.0)])
        return out

    def online(self) -> "OnlineBeam":
        """An incremental search over one utterance (flashlight's ``decode_begin`` /
        ``decode_step`` / ``decode_end``): the same result as this decoder's call on the
        utterance's log-probs, with a best partial text at any point."""
        return OnlineBeam(self)

    def _search(self, em: torch.Tensor) -> list:
        """flashlight's final ``DecodeResult`` list for one utterance's (T', V) emissions, best
        first (as torchaudio's call, without turning each into tensors). Not
        ``get_best_hypothesis``: that one backs up to the last completed word."""
        if em.shape[0] == 0:
            return []
        em = em.contiguous()
        d = self._fl
        d.decode_begin()
        d.decode_step(em.data_ptr(), em.shape[0], em.shape[1])
        if self._pad_silence:
            d.decode_step(self._pad.data_ptr(), 1, em.shape[1])
        d.decode_end()
        return d.get_all_final_hypothesis()

    def _hypothesis(self, r, lp: torch.Tensor, frame_seconds: float) -> Hypothesis:
        """A flashlight ``DecodeResult`` as a Hypothesis. Its ``tokens`` hold one token per
        step, step 0 being flashlight's leading silence (so frame = step - 1); a token starts
        where it differs from the step before and is not the blank, as torchaudio collapses
        them. The leading silence, the trailing one and a padded closing frame are not tokens.
        (A separator "|" at frame 0 merges with the leading silence and is not listed: it
        starts no word, so text and words are unaffected.)"""
        starts = [(s, t) for s, t in token_starts(r.tokens) if 1 <= s <= lp.shape[0]]
        tokens, steps = [t for _, t in starts], [s - 1 for s, _ in starts]
        text = self._words(r) if self.cfg.lexicon else self.tokenizer.decode(tokens)
        words = word_timings(lp, tokens, self.tokenizer, frame_seconds) \
            if frame_seconds > 0 and tokens else []
        return Hypothesis(text, tokens, steps, words, float(r.score))

    def _words(self, r) -> str:
        """A lexicon search result's words, as text."""
        return " ".join(self._decoder.word_dict.get_entry(w) for w in r.words if w >= 0)


class OnlineBeam:
    """One utterance's beam search fed frames as they come (see :meth:`BeamDecoder.online`)."""

    def __init__(self, dec: BeamDecoder):
        self.dec, self.frames = dec, 0
        dec._fl.decode_begin()

    def step(self, log_probs: torch.Tensor) -> None:
        """Search on over (T', V) more log-probs."""
        if log_probs.dim() != 2 or log_probs.shape[1] != self.dec._pad.shape[1]:
            raise ValueError(f"log_probs must be (T, {self.dec._pad.shape[1]}), found "
                             f"{tuple(log_probs.shape)}")
        if log_probs.shape[0]:
            em = log_probs.detach().float().cpu().contiguous()
            self.dec._fl.decode_step(em.data_ptr(), em.shape[0], em.shape[1])
            self.frames += log_probs.shape[0]

    def partial(self) -> str:
        """The best hypothesis so far, as text."""
        d = self.dec
        if not self.frames:
            return ""
        r = d._fl.get_best_hypothesis(0)
        if d.cfg.lexicon:
            return d._words(r)
        return d.tokenizer.decode([t for _, t in token_starts(r.tokens)])

    def finish(self, log_probs: torch.Tensor, frame_seconds: float = 0.0) -> Hypothesis:
        """End the search; ``log_probs``: all the utterance's (T', V) frames (for word times)."""
        d = self.dec
        if d._pad_silence and self.frames:
            d._fl.decode_step(d._pad.data_ptr(), 1, d._pad.shape[1])
        d._fl.decode_end()
        if not self.frames:
            return Hypothesis("", [], [], [], 0.0)
        results = d._fl.get_all_final_hypothesis()
        return d._hypothesis(results[0], log_probs, frame_seconds) if results \
            else Hypothesis("", [], [], [], 0.0)
