"""Several training processes (torchrun): process group, rank devices, collectives, failures.

Each rank joins the process group, trains on cuda:LOCAL_RANK (or the CPU) and takes part in the
collectives of a training step; a failing rank prints one line naming it. Without torchrun's
environment (``WORLD_SIZE`` unset or 1) there is no process group and every collective returns
its input, so one code path serves 1 and N processes. The gradient reduction is an explicit ``all_reduce`` of one flat buffer (gradients plus a few step scalars), not
``DistributedDataParallel``: a rank's backward passes per step vary (an out-of-memory retry in
halves, an empty share), which DDP's per-backward reducer cannot follow; see docs/distributed.md.
"""

from __future__ import annotations

import datetime
import logging
import os

import torch
import torch.distributed as tdist

from asr.errors import UserError


def env_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    out = []
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        value = os.environ.get(name, default)
        try:
            out.append(int(value))
        except ValueError:
            raise UserError(f"environment variable {name}={value!r} is not an integer") from None
    return out[0], out[1], out[2]


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class PeerLost(RuntimeError):
    """A collective failed: another training process stopped (or the network between them)."""


def failure_line(e: BaseException) -> str:
    """``Type: first line of the message`` (what a failing rank prints about its exception)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class Dist:
    """This process's place among the training processes and the collectives training uses.

    ``world`` 1: no process group; every collective returns its input unchanged."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0,
                 device: torch.device = torch.device("cpu")):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs, scores the dev set and writes files."""
        return self.rank == 0

    @classmethod
    def start(cls, device: str, timeout_s: float) -> "Dist":
        """Join the process group torchrun's environment describes (NCCL on CUDA, gloo on CPU;
        a collective waits at most ``timeout_s``). Each rank trains on cuda:LOCAL_RANK when CUDA
        is used, so ``device`` may only be auto, cuda or cpu with several processes."""
        rank, world, local = env_rank()
        dev = resolve_device(device)
        if world <= 1:
            return cls(0, 1, 0, dev)
        if dev.type == "cuda":
            if device not in ("auto", "cuda"):
                raise UserError(f"--device {device} with {world} processes: each rank uses "
                                "cuda:LOCAL_RANK; give --device cuda (or auto)")
            if local >= torch.cuda.device_count():
                raise UserError(f"rank {rank}: LOCAL_RANK {local} but only "
                                f"{torch.cuda.device_count()} CUDA devices on this node")
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        elif dev.type != "cpu":
            raise UserError(f"--device {device}: several processes train on cuda or cpu only")
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                 timeout=datetime.timedelta(seconds=timeout_s))
        return cls(rank, world, local, dev)

    def close(self) -> None:
        if self.world > 1 and tdist.is_initialized():
            tdist.destroy_process_group()

    def _collective(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:  # DistBackendError, DistNetworkError, gloo's "closed by peer"
            raise PeerLost(f"lost contact with the other training processes ({failure_line(e)}); "
                           "the rank that failed first says why (torchrun's report names it)"
                           ) from e

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``t`` over the ranks (a new tensor, on ``t``'s device)."""
        if self.world == 1:
            return t
        out = t.to(self.device, copy=True)
        self._collective(tdist.all_reduce, out)
        return out.to(t.device)

    def sum_ints(self, *values: int) -> list[int]:
        return [int(v) for v in self.all_sum(torch.tensor(values, dtype=torch.int64)).tolist()]

    def reduce_grads(self, params: list[torch.Tensor], scalars: list[float]) -> list[float]:
        """Sum every parameter's gradient (a missing one counts as zeros) and ``scalars`` over
        the ranks in one all-reduce. Afterwards every rank holds the same summed gradients."""
        if self.world == 1:
            return scalars
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]
                         + [torch.tensor(scalars, dtype=grads[0].dtype, device=self.device)])
        self._collective(tdist.all_reduce, flat)
        offset = 0
        for p, g in zip(params, grads):
            summed = flat[offset:offset + g.numel()].view_as(g)
            offset += g.numel()
            if p.grad is None:
                p.grad = summed.clone()
            else:
                p.grad.copy_(summed)
        return flat[offset:].tolist()

    def from_main(self, obj):
        """Rank 0's ``obj`` on every rank (the others wait for it)."""
        if self.world == 1:
            return obj
        box = [obj]
        self._collective(tdist.broadcast_object_list, box, src=0)
        return box[0]

    def copy_from_main(self, module: torch.nn.Module) -> None:
        """Overwrite ``module``'s parameters and buffers with rank 0's."""
        if self.world == 1:
            return
        with torch.no_grad():
            for t in module.state_dict().values():
                self._collective(tdist.broadcast, t, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            kwargs = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            self._collective(tdist.barrier, **kwargs)

    def quiet(self) -> None:
        """Ranks other than 0 log warnings only, each prefixed with ``rank N:``."""
        if self.main:
            return
        root = logging.getLogger()
        root.setLevel(max(root.getEffectiveLevel(), logging.WARNING))
        rank = self.rank

        def prefix(record: logging.LogRecord) -> bool:
            if not getattr(record, "asr_rank", False):
                record.msg, record.asr_rank = f"rank {rank}: {record.msg}", True
            return True

        for h in root.handlers:
            h.addFilter(prefix)


def step_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """Seed of the global RNG (dropout) for one step of one rank: resuming anywhere, with any
    number of processes, redraws what an uninterrupted run draws."""
    return (((seed * 1000 + epoch) * 1_000_003 + batch) * 1009 + rank) % 2**63
