"""Training: CTC loss, AdamW, warm-up + cosine schedule, clipping, AMP, checkpoints, resume,
early stopping, and averaging of the best checkpoints into the final model file.

Reads top to bottom: setup -> (resume) -> epochs of steps -> dev scoring -> checkpoint -> average.
Every random draw comes from seeds derived from (seed, epoch, batch), so a resumed run ends with
the same weights as an uninterrupted one. Under torchrun each rank's share of every batch has its
gradients summed over the ranks (docs/distributed.md): any number of processes trains the same way.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from asr.checkpoint import FORMAT, VERSION, atomic_save, load_model_file, safe_load
from asr.config import ExperimentConfig, from_dict, to_dict, to_yaml
from asr.data import Batch, FeatureSource, audio_problem, filter_utterances, make_batches, \
    prefetch, train_batches
from asr.distributed import Dist, step_seed
from asr.interrupt import check as check_interrupt
from asr.errors import UserError
from asr.inference import Recognizer
from asr.logs import TrainLogger
from asr.fileio import atomic_write_text
from asr.manifest import Utterance, read_manifest
from asr.model import CTCModel
from asr.shards import ShardSet
from asr.tokenizer import build_tokenizer, tokenizer_from_dict
from asr.train_shards import CMVN_SAMPLE, ShardEpochs, is_shard_dir, shard_cmvn, shard_texts
from asr.train_parts import (autocast_dtype, average_checkpoints, compute_cmvn,  # noqa: F401
                             is_oom, lr_factor, normalise, score_dev, with_init_sections)

log = logging.getLogger(__name__)


@dataclass
class State:
    """What a checkpoint restores besides the tensors."""

    epoch: int = 1  # epoch in progress (1-based)
    step_in_epoch: int = 0  # batches of that epoch already done
    global_step: int = 0
    best: float = math.inf
    bad_epochs: int = 0
    skipped_steps: int = 0
    oom_skipped: int = 0
    epoch_loss: float = 0.0  # running sum over this epoch's finite steps (kept across resume)
    epoch_steps: int = 0
    epoch_bad: int = 0  # non-finite steps in this epoch
    streams: int = 0  # training from shards: ranks x workers of the run that wrote it


class Trainer:
    def __init__(self, cfg: ExperimentConfig, train_manifest: str, dev_manifest: str,
                 exp_dir: str | Path, resume: bool = False, device: str = "auto",
                 init: str | Path | None = None):
        """``init``: a trained model file to fine-tune. Its weights, tokenizer and CMVN
        statistics, and its features/model/tokenizer/text config sections, replace the
        run's; the training, data and augmentation settings stay the run's."""
        self.exp = Path(exp_dir)
        self.ckpt_dir = self.exp / "checkpoints"
        self.last = self.ckpt_dir / "last.pt"
        if resume and not self.last.is_file():
            raise UserError(f"--resume: no checkpoint at {self.last}")
        if not resume and self.last.is_file():
            raise UserError(f"{self.exp} already holds a run; use --resume or another --exp-dir")
        ckpt = safe_load(self.last, "checkpoint") if resume else None
        if ckpt is not None:  # the run's own config wins over the command line on resume
            cfg = from_dict(ExperimentConfig, ckpt["config"])
        start = load_model_file(init) if init is not None and ckpt is None else None
        if start is not None:
            cfg = with_init_sections(cfg, start["config"], init)
        self.cfg = cfg
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        # Bad manifests fail before anything is written to the experiment folder.
        # --train: a manifest, or a folder of tar shards (asr shard) read as a stream
        self.shards = ShardSet.load(train_manifest) if is_shard_dir(train_manifest) else None
        train_utts = None if self.shards else normalise(read_manifest(train_manifest), cfg)
        self.dev_utts = normalise(read_manifest(dev_manifest), cfg)
        self.dist = dist = Dist.start(device, cfg.train.dist_timeout_s)  # rank 0 writes files
        self.device = dist.device
        self.exp.mkdir(parents=True, exist_ok=True)
        dist.quiet()
        if dist.main:
            handler = logging.FileHandler(self.exp / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logging.getLogger().addHandler(handler)
            atomic_write_text(self.exp / "config.yaml", to_yaml(cfg))

        bad_dev = [u for u in self.dev_utts if dist.main and audio_problem(u, read=True)]
        if bad_dev:
            log.warning("dev: leaving out %d utterances with unusable audio: %s", len(bad_dev),
                        ", ".join(u.id for u in bad_dev[:10]))
            self.dev_utts = [u for u in self.dev_utts if u not in bad_dev]
        first = ckpt or start  # where the tokenizer and CMVN come from, if not built here
        if first:
            self.tokenizer = tokenizer_from_dict(first["tokenizer"])
        else:  # rank 0's (the same unless building is nondeterministic)
            texts = ([cfg.text(t) for t in shard_texts(self.shards)] if self.shards
                     else [u.text for u in train_utts])
            built = build_tokenizer(cfg.tokenizer, texts) if dist.main else None
            self.tokenizer = built if dist.world == 1 else tokenizer_from_dict(
                dist.from_main(built.to_dict() if built else None))
        self.skipped: dict[str, str] = {}
        self.examples = []
        if self.shards is None:
            train_utts = self._drop_unreadable(train_utts)
            self.examples = filter_utterances(train_utts, self.tokenizer.encode, cfg.features,
                                              cfg.data, cfg.model.subsample, "train")
            if not self.examples:
                raise UserError(f"{train_manifest}: no usable training utterances")
        self.source = FeatureSource(cfg.features, None, cfg.data.cache_features and not self.shards)
        if cfg.features.speaker_cmvn:
            if self.shards:
                raise UserError("features.speaker_cmvn needs a manifest to group utterances by "
                                "speaker; a shard folder is read as a stream")
            self.source.speakers = self.source.speaker_stats(
                [e.utt for e in self.examples], cfg.data.speed_perturb or [1.0], self._skip)
        if first:
            cmvn = first["cmvn"]
        elif self.shards:  # a seeded sample: a corpus of any size costs the same
            cmvn = shard_cmvn(self.shards, self.source, CMVN_SAMPLE, cfg.train.seed, self._skip, dist)
        else:
            cmvn = compute_cmvn(self.examples, self.source, self._skip, dist)
        self.source.cmvn = cmvn
        self.rec = Recognizer(cfg, self.tokenizer, cmvn, device=str(self.device),
                              cache_features=cfg.data.cache_features)
        self.rec.longest_utterance = (max(float(s.durations.max()) for s in self.shards.shards
                                          if s.count) if self.shards
                                      else max(e.utt.duration for e in self.examples))
        self.data = ShardEpochs(self.shards, cfg, self.source, self._encode, dist) \
            if self.shards else None
        self.model: CTCModel = self.rec.model
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if start is not None:
            self.model.load_state_dict(start["model"])
            log.info("initialised from %s (fine-tuning)", init)
        dist.copy_from_main(self.model)  # every rank starts from rank 0's weights
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, betas=(0.9, 0.98),
                                     weight_decay=cfg.train.weight_decay)
        n0 = self.data.steps_in_epoch(1) if self.data else len(make_batches(
            [e.frames for e in self.examples], cfg.data.max_frames, cfg.data.max_batch, 1, None))
        total = n0 * cfg.train.epochs
        floor = cfg.train.min_lr / cfg.train.lr
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, cfg.train.warmup_steps, total, floor))
        self.amp_dtype = autocast_dtype(self.device, cfg.train.amp)
        self.use_amp = self.amp_dtype == torch.float16  # loss scaling: float16 only
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ctc = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
        self.state = State()
        if ckpt:
            self._restore(ckpt)
        streams = dist.world * max(1, cfg.data.workers) if self.shards else 0
        if self.shards and self.state.step_in_epoch and self.state.streams != streams:
            raise UserError(f"{self.last} stopped within epoch {self.state.epoch} of a sharded run "
                            f"read by {self.state.streams} streams (processes x data.workers); "
                            f"resume it with as many (not {streams}), or from an epoch's end")
        self.state.streams = streams
        self.logger = TrainLogger(self.exp, self.state.global_step) if dist.main else None
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s, %.2fM parameters, vocabulary %d, device %s, %s%s", cfg.model.cell,
                 n_params / 1e6, len(self.tokenizer.symbols), self.device,
                 f"mixed precision {self.amp_dtype}" if self.amp_dtype else "float32",
                 f", {dist.world} processes" if dist.world > 1 else "")

    # -- bad training audio ------------------------------------------------------------------
    def _drop_unreadable(self, utts: list[Utterance]) -> list[Utterance]:
        """Check every training file's header up front; skip (or, strict, fail on) bad ones."""
        keep = []
        for u in utts:
            problem = audio_problem(u)
            if problem is None:
                keep.append(u)
            elif self.dist.main or self.cfg.data.strict:  # every rank sees these: rank 0 tells
                self._skip(u, problem)
        return keep

    def _encode(self, text: str) -> list[int] | None:
        """Targets of a shard utterance's raw text (None: it cannot be tokenised)."""
        return self.tokenizer.encode(self.cfg.text(text))

    def _skip(self, u: Utterance, reason: str) -> None:
        """Record an unusable training utterance in ``skipped_utterances.tsv``."""
        if self.cfg.data.strict:
            raise UserError(f"{u.audio_path}: {reason} (utterance {u.id}; data.strict=true)")
        if u.id in self.skipped:
            return
        self.skipped[u.id] = f"{u.audio_path}\t{reason}"
        log.warning("skipping utterance %s: %s: %s", u.id, u.audio_path, reason)
        if self.dist.main:  # the other ranks' skips are in their warnings only
            atomic_write_text(self.exp / "skipped_utterances.tsv", "id\taudio_path\treason\n"
                              + "".join(f"{k}\t{v}\n" for k, v in sorted(self.skipped.items())))

    # -- checkpoints -------------------------------------------------------------------------
    def _payload(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "config": to_dict(self.cfg),
                "tokenizer": self.tokenizer.to_dict(), "cmvn": self.rec.cmvn,
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
                "state": vars(self.state).copy(), "rng": torch.get_rng_state()}

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = State(**ckpt["state"])
        torch.set_rng_state(ckpt["rng"])  # (each step reseeds from (seed, epoch, batch, rank))
        log.info("resumed from %s: epoch %d, batch %d", self.last, self.state.epoch,
                 self.state.step_in_epoch)

    def _save_epoch(self, epoch: int, metric: float) -> None:
        path = self.ckpt_dir / f"epoch-{epoch}.pt"
        atomic_save({"format": FORMAT, "version": VERSION, "model": self.model.state_dict(),
                     "metric": metric, "epoch": epoch}, path)
        self._rotate()

    def _epoch_files(self) -> list[tuple[float, int, Path]]:
        out = []
        for p in self.ckpt_dir.glob("epoch-*.pt"):
            meta = safe_load(p, "checkpoint")
            out.append((meta["metric"], meta["epoch"], p))
        return sorted(out)

    def _rotate(self) -> None:
        keep = max(self.cfg.train.keep_checkpoints, self.cfg.train.average_best)
        for _, _, p in self._epoch_files()[keep:]:
            p.unlink()

    # -- training ----------------------------------------------------------------------------
    def _loss_backward(self, batch: Batch, n_total: int) -> float | None:
        """Forward + backward of (part of) a batch, gradients scaled to the whole batch.
        Out of memory: split the batch in halves and accumulate; a single utterance that does
        not fit is skipped. Returns the loss per utterance, or None for a non-finite loss."""
        try:
            feats, lens = batch.feats.to(self.device), batch.lens.to(self.device)
            targets, tlens = batch.targets.to(self.device), batch.target_lens.to(self.device)
            layer, w = self.cfg.train.inter_ctc_layer, self.cfg.train.inter_ctc_weight
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                x, out_lens, inter = self.model.encode(feats, lens, keep=layer)
                outputs = [self.model.log_probs(h) for h in (x, inter) if h is not None]
            losses = [self.ctc(lp.transpose(0, 1), targets, out_lens, tlens) for lp in outputs]
            # summed over utterances; with intermediate CTC, mixed with the middle layer's
            loss = losses[0] if len(losses) == 1 else (1 - w) * losses[0] + w * losses[1]
            if not torch.isfinite(loss):
                return None
            self.scaler.scale(loss / n_total).backward()
            return loss.item() / n_total
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_oom(e):
                raise
        loss = losses = outputs = x = inter = None  # free what the failed attempt holds
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(batch.ids) == 1:
            log.warning("out of memory on utterance %s (%d frames): skipped", batch.ids[0],
                        int(batch.lens[0]))
            self.state.oom_skipped += 1
            return 0.0
        log.warning("out of memory on a batch of %d utterances: splitting it", len(batch.ids))
        parts = [self._loss_backward(half, n_total) for half in batch.split()]
        return None if None in parts else sum(parts)

    def _step(self, batch: Batch) -> float | None:
        """One optimiser update; None (and no update) when the loss or gradient is not finite.
        With several processes ``batch`` is this rank's share of a batch of ``batch.n_total``
        utterances; the summed gradients, losses, non-finite flags and out-of-memory skips of
        the shares are reduced in one all-reduce, so every rank then clips, skips or updates
        alike, with the gradient of the whole batch."""
        self.opt.zero_grad(set_to_none=True)
        oom_before = self.state.oom_skipped
        loss = self._loss_backward(batch, batch.n_total or len(batch.ids)) if batch.ids else 0.0
        if self.dist.world > 1:
            oom = self.state.oom_skipped - oom_before
            total, bad, ooms = self.dist.reduce_grads(self.params,
                                                      [loss or 0.0, float(loss is None), oom])
            self.state.oom_skipped = oom_before + round(ooms)
            loss = None if bad else total
        if loss is None:
            self.opt.zero_grad(set_to_none=True)
            return None
        self.scaler.unscale_(self.opt)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.train.grad_clip)
        if not torch.isfinite(norm) and not self.use_amp:
            self.opt.zero_grad(set_to_none=True)
            return None
        self.scaler.step(self.opt)  # skips the update itself on inf grads under AMP
        self.scaler.update()
        self.sched.step()
        return loss

    def _run_epoch(self, epoch: int) -> float:
        cfg, st, dist = self.cfg, self.state, self.dist
        self.model.train()
        batches = self.data.epoch(epoch, st.step_in_epoch, self._skip) if self.data else \
            prefetch(train_batches(self.examples, self.source, cfg.data, cfg.specaug,
                                   cfg.train.seed, epoch, on_error=self._skip, rank=dist.rank,
                                   world=dist.world), cfg.data.prefetch)
        bar = tqdm(desc=f"epoch {epoch}", unit="batch", disable=not dist.main or None, dynamic_ncols=True)
        try:
            self._epoch_steps(epoch, batches, bar)
        finally:  # on Ctrl-C too: the prefetch thread stops before the exception leaves
            if hasattr(batches, "close"):
                batches.close()
        bar.close()
        if st.epoch_steps == 0 and st.epoch_bad:
            raise UserError(f"epoch {epoch}: every step had a non-finite loss; check the data "
                            "and lower train.lr")
        return st.epoch_loss / max(1, st.epoch_steps)

    def _epoch_steps(self, epoch: int, batches, bar) -> None:
        cfg, st, dist = self.cfg, self.state, self.dist
        secs, t0 = 0.0, time.time()
        for bi, batch in batches:
            check_interrupt()  # a Ctrl-C Python dropped (asr/interrupt.py) stops training here
            if bi < st.step_in_epoch:  # done before an interruption
                continue
            (n_total,) = dist.sum_ints(len(batch.ids) if batch else 0)
            if n_total == 0:  # nothing readable in the whole batch
                continue
            batch = batch or Batch.empty(cfg.features.dim)  # a rank with no share still takes part
            batch.n_total = n_total
            torch.manual_seed(step_seed(cfg.train.seed, epoch, bi, dist.rank))  # dropout draws
            lr = self.opt.param_groups[0]["lr"]
            loss = self._step(batch)
            st.step_in_epoch, st.global_step = bi + 1, st.global_step + 1
            if self.logger:
                self.logger.log_step({"step": st.global_step, "epoch": epoch, "batch": bi,
                                      "utterances": n_total, "lr": lr,
                                      "loss": math.nan if loss is None else loss})
            if loss is None:
                st.skipped_steps, st.epoch_bad = st.skipped_steps + 1, st.epoch_bad + 1
                log.warning("non-finite loss or gradient at step %d: update skipped (%d so far)",
                            st.global_step, st.skipped_steps)
            else:
                st.epoch_loss, st.epoch_steps = st.epoch_loss + loss, st.epoch_steps + 1
            secs += batch.seconds
            bar.update(1)
            bar.set_postfix(loss=f"{st.epoch_loss / max(1, st.epoch_steps):.3f}",
                            audio_s_per_s=f"{secs / (time.time() - t0):.0f}")
            every = cfg.train.checkpoint_every_steps
            if every and st.global_step % every == 0 and dist.main:
                atomic_save(self._payload(), self.last)

    def fit(self) -> Path:
        cfg, st, main = self.cfg, self.state, self.dist.main
        while st.epoch <= cfg.train.epochs:
            epoch, t0 = st.epoch, time.time()
            train_loss = self._run_epoch(epoch)
            # rank 0 scores the dev set; the others wait for its result (early stopping)
            dev = self.dist.from_main(score_dev(self.rec, self.dev_utts) if main else None)
            metric = dev[f"dev_{cfg.train.select_metric}"]
            improved = metric < st.best
            st.best, st.bad_epochs = (metric, 0) if improved else (st.best, st.bad_epochs + 1)
            row = {"epoch": epoch, "step": st.global_step, "train_loss": train_loss, **dev,
                   "lr": self.opt.param_groups[0]["lr"], "seconds": time.time() - t0}
            log.info("epoch %d: loss %.3f  dev WER %.2f%%  CER %.2f%%  (%.0f s)", epoch,
                     train_loss, 100 * dev["dev_wer"], 100 * dev["dev_cer"], row["seconds"])
            if main:
                self.logger.log(row)
                self._save_epoch(epoch, metric)
            st.epoch, st.step_in_epoch = epoch + 1, 0
            st.epoch_loss, st.epoch_steps, st.epoch_bad = 0.0, 0, 0
            stop = cfg.train.patience and st.bad_epochs >= cfg.train.patience
            if stop:
                st.epoch = cfg.train.epochs + 1  # a resumed run must not train further
            if main:
                atomic_save(self._payload(), self.last)
            if stop:
                log.info("early stopping: no dev improvement for %d epochs", st.bad_epochs)
                break
        return self.finish()

    def finish(self) -> Path:
        out = self.exp / "model.pt"
        if self.dist.main:
            self._write_model(out)
        self.dist.barrier()  # the other ranks end when the model file is there
        self.dist.close()
        return out

    def _write_model(self, out: Path) -> None:
        best = self._epoch_files()[: self.cfg.train.average_best]
        log.info("averaging epochs %s", ", ".join(str(e) for _, e, _ in best))
        self.model.load_state_dict(average_checkpoints([p for _, _, p in best]))
        dev = score_dev(self.rec, self.dev_utts)
        log.info("final (averaged) model: dev WER %.2f%%  CER %.2f%%", 100 * dev["dev_wer"],
                 100 * dev["dev_cer"])
        self.rec.save(out, {"averaged_epochs": [e for _, e, _ in best], "dev": dev})
        self.logger.close()
