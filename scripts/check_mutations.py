"""Mutation check of the promises in docs/robustness.md ("What each test guards"): break the
implementation on purpose, run the test that guards the promise, expect it to FAIL, restore the
file byte for byte. Run from the repository root with nothing else editing asr/:

    python scripts/check_mutations.py            # all mutations (about 7 minutes on 2 cores)
    python scripts/check_mutations.py NAME ...   # some of them

Exit status 0 when every mutation is caught.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

R = "tests/test_train_resume.py::test_sigkill_three_times_then_resume_equals_uninterrupted"
O = "tests/robustness/test_oom.py::"
T = "tests/test_train_promises.py::"
X = "tests/robustness/test_exit_codes.py::"
C = "tests/robustness/test_bad_config.py::test_documented_range_check"
L = "tests/robustness/test_long_audio.py"
D = "tests/test_distributed.py::"

# name -> (file, [(old, new), ...], test); each old string occurs exactly once in the file.
TRAIN = {  # asr/train.py
 "resume-ignores-ckpt": ([('ckpt = safe_load(self.last, "checkpoint") if resume else None', 'ckpt = None')], R),
 "resume-redoes-epoch": ([('if bi < st.step_in_epoch:', 'if False:')], R),
 "split-own-count": ([('self.scaler.scale(loss / n_total).backward()', 'self.scaler.scale(loss / len(batch.ids)).backward()')], O+"test_split_halves_give_the_whole_batch_gradient"),
 "split-no-scaling": ([('self.scaler.scale(loss / n_total).backward()', 'self.scaler.scale(loss).backward()'), ('return loss.item() / n_total', 'return loss.item()')], O+"test_split_halves_give_the_whole_batch_gradient"),
 "split-first-half-only": ([('for half in batch.split()]', 'for half in batch.split()[:1]]')], O+"test_oom_batches_are_split_and_single_oversize_utterances_skipped"),
 "oom-counts-every-oom": ([('        loss = losses = outputs = x = inter = None', '        self.state.oom_skipped += 1\n        loss = losses = outputs = x = inter = None'), ('            self.state.oom_skipped += 1\n', '')], O+"test_oom_batches_are_split_and_single_oversize_utterances_skipped"),
 "rotate-keeps-all": ([('for _, _, p in self._epoch_files()[keep:]:', 'for _, _, p in self._epoch_files()[10**6:]:')], T+"test_rotation_keeps_a_bounded_number_of_the_best"),
 "rotate-ignores-average_best": ([('keep = max(self.cfg.train.keep_checkpoints, self.cfg.train.average_best)', 'keep = self.cfg.train.keep_checkpoints')], T+"test_rotation_keeps_a_bounded_number_of_the_best"),
 "no-nonfinite-loss-skip": ([('            if not torch.isfinite(loss):\n                return None', '            if False:\n                return None')], T+"test_non_finite_loss_or_gradient_steps_are_skipped_and_counted"),
 "no-nonfinite-grad-skip": ([('if not torch.isfinite(norm) and not self.use_amp:', 'if False:')], T+"test_non_finite_loss_or_gradient_steps_are_skipped_and_counted"),
 "nonfinite-not-counted": ([('st.skipped_steps, st.epoch_bad = st.skipped_steps + 1, st.epoch_bad + 1', 'st.epoch_bad = st.epoch_bad + 1')], T+"test_non_finite_loss_or_gradient_steps_are_skipped_and_counted"),
 "patience-ignored": ([('stop = cfg.train.patience and st.bad_epochs >= cfg.train.patience', 'stop = False')], T+"test_early_stopping_stops_and_a_resumed_run_does_not_train_further"),
 "resume-after-stop-trains": ([('st.epoch = cfg.train.epochs + 1  # a resumed run must not train further', 'pass')], T+"test_early_stopping_stops_and_a_resumed_run_does_not_train_further"),
 "average-last-not-best": ([('best = self._epoch_files()[: self.cfg.train.average_best]', 'best = sorted(self._epoch_files(), key=lambda t: t[1])[-self.cfg.train.average_best:]')], T+"test_final_model_is_the_mean_of_the_best_epochs"),
 "dist-own-count": ([('self._loss_backward(batch, batch.n_total or len(batch.ids))', 'self._loss_backward(batch, len(batch.ids))')], D+"test_two_processes_train_like_one"),
 "dist-clip-before-reduce": ([('            oom = self.state.oom_skipped - oom_before\n', '            oom = self.state.oom_skipped - oom_before\n            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.train.grad_clip)\n')], D+"test_two_processes_train_like_one"),
 "dist-own-skip": ([('loss = None if bad else total', 'loss = None if loss is None else total')], D+"test_a_non_finite_loss_on_one_rank_skips_the_step_on_every_rank"),
 "dist-resume-redoes-epoch": ([('if bi < st.step_in_epoch:', 'if False:')], D+"test_one_process_checkpoint_resumes_with_two"),
 "dist-resume-ignores-ckpt": ([('ckpt = safe_load(self.last, "checkpoint") if resume else None', 'ckpt = None')], D+"test_sigkill_of_one_rank_ends_the_job_and_one_process_resumes_it"),
}

OTHER = {
    "user-error-exit-1": ("asr/cli/__init__.py", [("        return 2\n", "        return 1\n")],
                          X + "test_2_user_error"),
    "interrupt-exit-1": ("asr/cli/__init__.py", [("        return 130\n", "        return 1\n")],
                         X + "test_130_interrupt_in_process"),
    "os-refusal-exit-2": ("asr/cli/__init__.py", [("        return 1\n", "        return 2\n")],
                          X + "test_1_disk_full"),
    "min-lr-unchecked": ("asr/config.py", [("        if self.min_lr > self.lr:", "        if False:")],
                         C),
    "vocab-size-unchecked": ("asr/tokenizer.py", [(
        "if isinstance(self.vocab_size, int) and self.vocab_size < 2:", "if False:")], C),
    "average-is-best-only": ("asr/train_parts.py", [(
        "avg[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype) \\",
        "avg[k] = states[0][k].clone() \\")], T + "test_final_model_is_the_mean_of_the_best_epochs"),
    "dist-shares-overlap": ("asr/data.py", [(
        "return sorted(by_length[rank::world])",
        "return sorted(set(by_length[rank::world]) | {by_length[0]})")],
        D + "test_shares_are_disjoint_balanced_and_augmented_as_in_one_batch"),
    "dist-share-generator": ("asr/data.py", [(
        "i, g = idx[k], torch.Generator().manual_seed(utt_seeds[k])",
        "i, g = idx[k], torch.Generator().manual_seed(aug_seeds[bi] + rank)")],
        D + "test_shares_are_disjoint_balanced_and_augmented_as_in_one_batch"),
    "dist-rank-is-local-rank": ("asr/distributed.py", [(
        "return out[0], out[1], out[2]", "return out[2], out[1], out[2]")],
        D + "test_two_nodes_train_like_one_node"),
    "per-chunk-leak": ("asr/transcribe.py", [(
        "        hyps = [nb[0] for nb in self.decoder(log_probs, out_lens)]",
        "        globals().setdefault('_LEAK', []).append(log_probs.clone())\n"
        "        hyps = [nb[0] for nb in self.decoder(log_probs, out_lens)]")], L),
}
MUTATIONS = {**{k: ("asr/train.py", e, t) for k, (e, t) in TRAIN.items()}, **OTHER}


def main(names: list[str]) -> int:
    ok = True
    for name in names or list(MUTATIONS):
        path, edits, test = MUTATIONS[name]
        p = Path(path)
        orig = s = p.read_text()
        for old, new in edits:
            assert s.count(old) == 1, (name, old)
            s = s.replace(old, new)
        p.write_text(s)
        t0 = time.time()
        try:
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                "no:cacheprovider", test], capture_output=True, text=True)
        finally:
            p.write_text(orig)
        caught = r.returncode == 1
        print(f"{name}: {'caught' if caught else 'NOT CAUGHT'} by {test} "
              f"({time.time() - t0:.0f} s)", flush=True)
        ok &= caught
    print("every mutation caught" if ok else "SOME MUTATION SURVIVED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
