"""Benchmark: one LSTM stack of a batch of one, three ways, on one thread: the streaming path's
step loop (``asr.stream._LSTMSteps``, weights stored transposed, ``addmm`` per step), the same
loop with ``linear`` on the (4H, H) weights (the streaming code before ``7c78a82``), and
PyTorch's ``nn.LSTM`` (oneDNN), also under bf16 autocast. Two shapes: a streaming chunk (few
frames) and a whole utterance (the offline path). Random weights; the time is the best of --repeats.

    python bench/lstm_step.py [--hidden 384] [--layers 4] [--input 320] [--chunk-frames 3]
        [--utt-frames 70] [--repeats 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from asr.stream import _LSTMSteps


def linear_steps(rnn: torch.nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """The step loop with ``linear`` on the untransposed weights (the code before 7c78a82)."""
    H = rnn.hidden_size
    h, c = x.new_zeros(H), x.new_zeros(H)
    gx = torch.nn.functional.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0)
    outs = []
    for gx_t in gx.unbind(0):
        g = torch.nn.functional.linear(h, rnn.weight_hh_l0, rnn.bias_hh_l0).add_(gx_t).view(4, H)
        g[:2].sigmoid_()
        g[2].tanh_()
        g[3].sigmoid_()
        i, f, cell, o = g.unbind(0)
        c = (f * c).add_(i * cell)
        h = o * c.tanh()
        outs.append(h)
    return torch.stack(outs)


def bf16(rnn: torch.nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """``nn.LSTM`` as ``bench/inference.py`` runs it with bf16 (emulated where not native)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return rnn(x.unsqueeze(0))[0][0].float()


def best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 1e3 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--input", type=int, default=320)
    ap.add_argument("--chunk-frames", type=int, default=3)
    ap.add_argument("--utt-frames", type=int, default=70)
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dims = [a.input] + [a.hidden] * (a.layers - 1)
    rnns = [torch.nn.LSTM(d, a.hidden, batch_first=True).eval() for d in dims]
    steps = [_LSTMSteps(r) for r in rnns]

    def stack(run, frames):
        x = torch.randn(frames, a.input)

        def go():
            y = x
            for k in range(a.layers):
                y = run(k, y)
            return y
        return go
    ways = {
        "step loop, transposed weights + addmm (asr.stream now)": lambda k, y: steps[k](y, None)[0],
        "step loop, linear on (4H, H) weights (before 7c78a82)": lambda k, y: linear_steps(rnns[k], y),
        "nn.LSTM (oneDNN)": lambda k, y: rnns[k](y.unsqueeze(0))[0][0],
        "nn.LSTM (oneDNN) under bf16 autocast": lambda k, y: bf16(rnns[k], y),
    }
    print(f"# LSTM stack, batch of one, 1 thread: {a.layers}x{a.hidden}, input {a.input}, torch "
          f"{torch.__version__}")
    print(f"| way | {a.chunk_frames}-frame chunk ms | {a.utt_frames}-frame utterance ms |")
    print("|---|---|---|")
    with torch.inference_mode():
        torch.manual_seed(2)
        ref = stack(ways["nn.LSTM (oneDNN)"], a.utt_frames)()
        for name, run in ways.items():
            torch.manual_seed(1)
            chunk = best_ms(stack(run, a.chunk_frames), a.repeats)
            torch.manual_seed(2)
            utt = best_ms(stack(run, a.utt_frames), max(1, a.repeats // 10))
            print(f"| {name} | {chunk:.3f} | {utt:.3f} |")
        torch.manual_seed(2)
        diff = (stack(ways[next(iter(ways))], a.utt_frames)() - ref).abs().max()
    print(f"max |output difference| step loop vs nn.LSTM: {float(diff):.1e}")


if __name__ == "__main__":
    main()
