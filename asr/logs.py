"""Training logs: CSV rows per epoch and per step, TensorBoard scalars, a PNG of the curves."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from asr.fileio import atomic_write_text

STEP_FIELDS = ("step", "epoch", "batch", "utterances", "loss", "lr")


def plot_curves(rows: list[dict], path: Path) -> None:
    """Write train loss and dev WER/CER against epoch as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r["train_loss"] for r in rows], marker="o")
    a.set(xlabel="epoch", ylabel="CTC loss per utterance", title="training loss")
    b.plot(epochs, [100 * r["dev_wer"] for r in rows], marker="o", label="dev WER")
    b.plot(epochs, [100 * r["dev_cer"] for r in rows], marker="o", label="dev CER")
    b.set(xlabel="epoch", ylabel="%", title="dev error rates")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def _keep_steps(path: Path, last_step: int) -> None:
    """Cut ``steps.csv`` back to the steps up to ``last_step`` (those a resumed run does not
    redo), dropping a line cut short by a kill; rewritten atomically."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if None not in r.values() and r["step"].isdigit()
                and int(r["step"]) <= last_step]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=STEP_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


class TrainLogger:
    """Appends epoch rows to ``log.csv`` (rewritten atomically), mirrors them to TensorBoard
    under ``tensorboard/`` and redraws ``curves.png``. On resume the CSV's rows are kept,
    minus any epoch being redone. Every optimiser step appends a row (``STEP_FIELDS``; loss per
    utterance of the whole batch, nan for a skipped step) to ``steps.csv``; a run resumed at
    step ``step`` keeps the rows up to it."""

    def __init__(self, exp: Path, step: int = 0):
        self.steps_csv = exp / "steps.csv"
        _keep_steps(self.steps_csv, step)
        new = not self.steps_csv.is_file()
        self.steps = open(self.steps_csv, "a", newline="")
        self.step_writer = csv.DictWriter(self.steps, fieldnames=STEP_FIELDS)
        if new:
            self.step_writer.writeheader()
        self.csv = exp / "log.csv"
        self.png = exp / "curves.png"
        self.rows: list[dict] = []
        if self.csv.is_file():
            with open(self.csv, newline="") as f:
                self.rows = [{k: float(v) if k != "epoch" else int(v) for k, v in r.items()}
                             for r in csv.DictReader(f)]
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(exp / "tensorboard"))

    def log(self, row: dict) -> None:
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(row))
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.csv, buf.getvalue())
        for k, v in row.items():
            if k != "epoch":
                self.tb.add_scalar(k, v, row["epoch"])
        self.tb.flush()
        plot_curves(self.rows, self.png)

    def log_step(self, row: dict) -> None:
        self.step_writer.writerow(row)
        self.steps.flush()
        self.tb.add_scalar("step_loss", row["loss"], row["step"])

    def close(self) -> None:
        self.steps.close()
        self.tb.close()
