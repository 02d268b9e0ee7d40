"""``asr train``: train a model from manifests (a config file plus KEY=VALUE overrides)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model from manifests")
    t.add_argument("--config", type=Path, help="YAML config (defaults when omitted)")
    t.add_argument("--train", required=True,
                   help="training manifest (JSONL, JSONL.gz), or a folder of tar shards (asr shard)")
    t.add_argument("--dev", required=True, help="dev manifest (JSONL), for early stopping")
    t.add_argument("--exp-dir", required=True, type=Path, help="output folder")
    t.add_argument("--resume", action="store_true", help="continue from exp-dir's last checkpoint")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    t.add_argument("--init", type=Path, metavar="MODEL",
                   help="fine-tune a trained model file (its weights, tokens, CMVN, features "
                        "and model shape; ignored with --resume)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.epochs=10 model.cell=gru")
    t.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from asr.distributed import PeerLost, env_rank, failure_line
    from asr.errors import UserError

    rank, world, _ = env_rank()
    if world <= 1:
        return _train(a)
    try:  # under torchrun: every failure is one line naming the rank (then, for bugs, the trace)
        return _train(a)
    except UserError as e:
        raise UserError(f"rank {rank} of {world}: {e}") from None
    except PeerLost as e:
        print(f"asr: rank {rank} of {world}: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"asr: rank {rank} of {world} failed: {failure_line(e)}", file=sys.stderr)
        raise


def _train(a: argparse.Namespace) -> int:
    from asr.cli.common import check_device
    from asr.config import load_config
    from asr.distributed import env_rank
    from asr.fileio import check_output_dir
    from asr.train import Trainer

    check_device(a.device, allow_auto=True)
    check_output_dir(a.exp_dir)
    cfg = load_config(a.config, a.overrides)
    model = Trainer(cfg, a.train, a.dev, a.exp_dir, resume=a.resume, device=a.device,
                    init=a.init).fit()
    if env_rank()[0] == 0:
        print(f"model written to {model}")
    return 0
