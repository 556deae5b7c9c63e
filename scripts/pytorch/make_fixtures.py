#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures of tests/parity/ (safetensors files in tests/data/parity/).

Deterministic: every file comes from torch.manual_seed(<fixed seed>) on the CPU with one thread, so
re-running with the same torch version reproduces the same bytes (see tests/data/parity/README.md).

  mlp_forward_backward.safetensors   Sequential(Linear(20,16), ReLU, Linear(16,5)), batch 8
  mlp_mnist_forward_backward.safetensors   Sequential(Linear(784,128), ReLU, Linear(128,64), ReLU, Linear(64,10)), batch 4
    parameters under their state_dict names ("0.weight", ...), "input" [B, in] f32, "labels" [B] i64,
    "logits" [B, C], "loss" [1] (mean cross entropy), "grad.logits" [B, C] (d loss / d logits),
    "grad.input" [B, in] (d loss / d input), "grad.<param>" for every parameter.
  optim_{adam,adamw,sgd_momentum,sgd_nesterov}.safetensors
    "param.0.<name>" starting values of two tensors ("weight" [7, 5], "bias" [5]),
    "grad.<t>.<name>" the gradient fed to step t (t = 1..3),
    "param.<t>.<name>" the values after step t, "state.<t>.<name>.<key>" the optimizer state after
    step t (exp_avg, exp_avg_sq / momentum_buffer); hyper-parameters in __metadata__ as strings
    (Python repr of the floats, so that parsing them as double gives the exact same value).

Usage: python scripts/pytorch/make_fixtures.py [--out tests/data/parity]
"""
import argparse
import json
import os

import torch
import safetensors.torch

STEPS = 3


def save_file(tensors, path, metadata):
    """safetensors.torch.save_file, but byte-for-byte reproducible: python safetensors writes
    __metadata__ in hash order, so rewrite the header with sorted metadata (data section unchanged)."""
    blob = safetensors.torch.save(tensors, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    ordered = {"__metadata__": dict(sorted(meta.items()))}
    ordered.update(sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # data starts 8-byte aligned, as safetensors writes it
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + blob[8 + n:])


def common_metadata(seed):
    return {
        "generator": "scripts/pytorch/make_fixtures.py",
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": str(torch.get_num_threads()),
        "seed": str(seed),
    }


def relu_margin(model, x):
    """Smallest |pre-activation| feeding a ReLU: if it were ~0, float rounding could flip the mask."""
    margin = float("inf")
    h = x
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.ReLU):
                margin = min(margin, h.abs().min().item())
            h = m(h)
    return margin


def mlp_fixture(path, sizes, batch, seed, make_input):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)  # default (Kaiming-uniform) init from the seed
    x = make_input(batch, sizes[0])
    labels = torch.randint(0, sizes[-1], (batch,), dtype=torch.int64)

    margin = relu_margin(model, x)
    # A pre-activation this close to 0 could change sign between two fp32 gemms (the tests allow
    # ~1e-6 absolute difference), which would turn a gradient on or off: pick another seed.
    if margin < 1e-4:
        raise SystemExit(f"{path}: smallest |pre-activation| is {margin:g}; choose another seed")

    x.requires_grad_(True)
    logits = model(x)
    logits.retain_grad()
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()

    tensors = {name: p.detach().clone() for name, p in model.state_dict().items()}
    tensors["input"] = x.detach().clone()
    tensors["labels"] = labels
    tensors["logits"] = logits.detach().clone()
    tensors["loss"] = loss.detach().reshape(1).clone()
    tensors["grad.logits"] = logits.grad.clone()
    tensors["grad.input"] = x.grad.clone()
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.clone()
    meta = common_metadata(seed)
    meta.update({"layers": ",".join(str(s) for s in sizes), "batch": str(batch),
                 "min_abs_preactivation": repr(margin)})
    save_file(tensors, path, metadata=meta)
    return margin


def optim_fixture(path, make_optimizer, hyper, seed):
    torch.manual_seed(seed)
    params = {"weight": torch.nn.Parameter(torch.randn(7, 5)), "bias": torch.nn.Parameter(torch.randn(5))}
    tensors = {f"param.0.{n}": p.detach().clone() for n, p in params.items()}
    opt = make_optimizer(list(params.values()), **hyper)
    for t in range(1, STEPS + 1):
        for n, p in params.items():
            # Gradients over four decades (1e-3 .. 10) so that eps, weight decay and momentum all matter.
            scale = torch.pow(10.0, torch.empty(p.shape).uniform_(-3.0, 1.0))
            g = torch.randn(p.shape) * scale
            tensors[f"grad.{t}.{n}"] = g.clone()
            p.grad = g.clone()
        opt.step()
        for n, p in params.items():
            tensors[f"param.{t}.{n}"] = p.detach().clone()
            for key, value in opt.state[p].items():
                if key != "step":
                    tensors[f"state.{t}.{n}.{key}"] = value.detach().clone()
    meta = common_metadata(seed)
    meta["optimizer"] = type(opt).__name__
    meta["steps"] = str(STEPS)
    # Every hyper-parameter the optimizer used (defaults included), as the exact Python value.
    for key, value in opt.defaults.items():
        if key == "betas":
            meta["beta1"], meta["beta2"] = repr(float(value[0])), repr(float(value[1]))
        elif isinstance(value, bool):
            meta[key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            meta[key] = repr(float(value))
    save_file(tensors, path, metadata=meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "data", "parity"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # One thread: MKL's gemm may split K across threads, which changes the rounding of the results.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    m1 = mlp_fixture(out("mlp_forward_backward.safetensors"), [20, 16, 5], 8, 1234,
                     lambda b, n: torch.randn(b, n))
    # MNIST-like input: pixel intensities k/255 in [0, 1].
    m2 = mlp_fixture(out("mlp_mnist_forward_backward.safetensors"), [784, 128, 64, 10], 4, 2024,
                     lambda b, n: torch.randint(0, 256, (b, n)).float() / 255.0)

    optim_fixture(out("optim_adam.safetensors"), torch.optim.Adam,
                  {"lr": 1e-2, "weight_decay": 0.1}, 11)
    optim_fixture(out("optim_adamw.safetensors"), torch.optim.AdamW,
                  {"lr": 1e-2, "weight_decay": 0.1}, 12)
    optim_fixture(out("optim_sgd_momentum.safetensors"), torch.optim.SGD,
                  {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, 13)
    optim_fixture(out("optim_sgd_nesterov.safetensors"), torch.optim.SGD,
                  {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, 14)

    total = 0
    for name in sorted(os.listdir(args.out)):
        if name.endswith(".safetensors"):
            size = os.path.getsize(out(name))
            total += size
            print(f"{name:40s} {size:8d} bytes")
    print(f"{'total':40s} {total:8d} bytes   (min |pre-activation|: small {m1:.3g}, mnist {m2:.3g})")


if __name__ == "__main__":
    main()
