#!/usr/bin/env python3
"""PyTorch reference of bench/qca: the QCA U-Net law step (shared/specs/qca-step.md), timed, one
ferrite-bench/1 JSON document. Same flags as bench/qca where they apply.

A fair eager timing: torch.inference_mode(), a clean step (no clones, no autograd), warm-up
before timing, device sync before every clock read, TF32 off (unless --allow-tf32).

  python scripts/pytorch/qca.py --grid 128 --threads 2 --json pt.json
  python scripts/pytorch/qca.py --weights w.safetensors --initial-state s.safetensors --save-state t.safetensors
  python scripts/pytorch/qca.py ... --save-state t.safetensors --save-steps 1,10   (also psi.1, psi.10)

--save-state writes psi0, psi (after --steps) and psi.<k> (after k steps, --save-steps); --reference-state
compares psi and every psi.<k> the file holds, by relative L2 error (quality.rel_l2_steps / rel_l2_by_step).
"""
import argparse
import os
import sys

import torch
import safetensors.torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from qca_model import QcaUNet, as_real, complex_noise_state, from_real, qca_step  # noqa: E402


def flops_per_step(d, h, n):
    full, half, quarter = n * n, n * n / 4, n * n / 16

    def block(cin, cout, px):
        return 2 * px * 9 * cout * (cin + cout)
    f = block(2 * d, h, full) + block(h, 2 * h, half) + block(2 * h, 4 * h, quarter) + block(4 * h, 8 * h, quarter)
    f += block(6 * h, 4 * h, half) + block(3 * h, h, full)
    f += 2 * quarter * 8 * h * 4 * h * 4 + 2 * half * 4 * h * 2 * h * 4 + 2 * full * h * 2 * d
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, default=128)
    ap.add_argument("--d-state", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--law", choices=["unet", "unet-unitary"], default="unet-unitary")
    ap.add_argument("--gamma", type=float, default=0.01)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--init", choices=["complex_noise", "random"], default="complex_noise")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default="")
    ap.add_argument("--initial-state", default="")
    ap.add_argument("--save-state", default="")
    ap.add_argument("--reference-state", default="")
    ap.add_argument("--save-steps", default="", help="comma-separated steps k whose state goes to --save-state as psi.<k>")
    ap.add_argument("--allow-tf32", action="store_true")
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = a.allow_tf32
    torch.backends.cudnn.allow_tf32 = a.allow_tf32
    device = torch.device(a.device)
    report = common.skeleton("qca", device, {k: v for k, v in vars(a).items()})
    try:
        if a.grid % 4:
            raise ValueError(f"the grid must be a multiple of 4, got {a.grid}")
        try:
            save_steps = sorted({int(k) for k in a.save_steps.split(",") if k.strip()})
        except ValueError:
            raise ValueError(f"--save-steps must be comma-separated integers, got {a.save_steps!r}") from None
        if any(not 1 <= k <= a.steps for k in save_steps):
            raise ValueError(f"--save-steps {a.save_steps}: every step must be in 1..{a.steps} (--steps)")
        reference = {}
        if a.reference_state:  # {k: psi after k steps}: 'psi' is after --steps, 'psi.<k>' after k
            for name, t in safetensors.torch.load_file(a.reference_state).items():
                if name == "psi" or (name.startswith("psi.") and name[4:].isdigit()):
                    k = a.steps if name == "psi" else int(name[4:])
                    if not 1 <= k <= a.steps:
                        raise ValueError(f"{a.reference_state}: {name} is after {k} steps, this run makes {a.steps}")
                    if name == "psi" or k not in reference:
                        reference[k] = t.double()
            if a.steps not in reference:
                raise ValueError(f"{a.reference_state}: no tensor named 'psi'")
        kept_steps = set(save_steps) | set(reference)
        torch.manual_seed(a.seed)
        model = QcaUNet(a.d_state, a.hidden, small_outc=True)
        if a.weights:
            model.load_state_dict(safetensors.torch.load_file(a.weights), strict=True)
        model = model.to(device).eval()
        if a.initial_state:
            psi0 = from_real(safetensors.torch.load_file(a.initial_state)["psi0"]).to(device)
        else:
            g = torch.Generator().manual_seed(a.seed)
            if a.init == "complex_noise":
                psi0 = complex_noise_state(1, a.grid, a.grid, a.d_state, g)
            else:
                psi0 = torch.complex(torch.randn(1, a.grid, a.grid, a.d_state, generator=g),
                                     torch.randn(1, a.grid, a.grid, a.d_state, generator=g))
                psi0 = psi0 / psi0.abs().pow(2).sum(-1, keepdim=True).sqrt()
            psi0 = psi0.to(device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        with torch.inference_mode():
            psi = psi0
            for _ in range(a.warmup_steps):
                psi = qca_step(model, psi, a.law, a.gamma)
            sync()
            psi = psi0
            step_ms, kept = [], {}
            t_total = common.now()
            for i in range(a.steps):
                t0 = common.now()
                psi = qca_step(model, psi, a.law, a.gamma)
                sync()
                step_ms.append((common.now() - t0) * 1e3)
                if i + 1 in kept_steps:
                    kept[i + 1] = psi  # each step makes a new tensor: keeping it costs no copy
            seconds = common.now() - t_total
            psi = psi.cpu()
            norms = psi.abs().pow(2).sum(-1).sqrt()
            max_norm_error = float((norms.double() - 1).abs().max())
            energy = float(psi.abs().pow(2).double().mean())
            rel_by_step = {}
            for k, ref in sorted(reference.items()):
                if tuple(ref.shape) != tuple(as_real(psi).shape):
                    raise ValueError(f"{a.reference_state}: the state after {k} steps is {list(ref.shape)}, this run's "
                                     f"is {list(as_real(psi).shape)} (same --grid and --d-state needed)")
                rel_by_step[k] = float((as_real(kept[k].cpu()).double() - ref).norm() / ref.norm())
            rel = rel_by_step.get(a.steps)
            if a.save_state:
                states = {"psi0": as_real(psi0.cpu()), "psi": as_real(psi)}
                states.update({f"psi.{k}": as_real(kept[k].cpu()) for k in save_steps})
                safetensors.torch.save_file(states, a.save_state,
                                            metadata={"steps": str(a.steps), "law": a.law, "producer": "pytorch"})
        steps_per_s = a.steps / seconds
        flops = flops_per_step(a.d_state, a.hidden, a.grid)
        report["device"] = {"type": device.type, "name": common.cpu_model() if device.type == "cpu"
                            else torch.cuda.get_device_name(device), "threads": torch.get_num_threads()}
        report["metrics"] = {
            "throughput": {"value": steps_per_s, "unit": "steps/s", "method": "timed steps / their total wall time"},
            "latency_ms": common.summarize_ms(step_ms),
            "peak_memory_mb": {"host": common.peak_host_rss_mb(),
                               "device": torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None},
            "flops_per_step": flops, "gflops": flops * steps_per_s / 1e9,
            "cells_per_s": steps_per_s * a.grid * a.grid, "total_seconds": seconds}
        report["quality"] = {"loss_per_epoch": None, "final_loss": None, "train_accuracy": None,
                             "test_accuracy": None, "energy": energy, "max_norm_error": max_norm_error,
                             "rel_l2_vs_reference": rel}
        if rel_by_step:
            report["quality"]["rel_l2_steps"] = list(rel_by_step)
            report["quality"]["rel_l2_by_step"] = list(rel_by_step.values())
        report["extra"] = {"model": "qca unet (Aetheria 2-level U-Net)",
                           "parameters": sum(p.numel() for p in model.parameters()), "cells": a.grid * a.grid,
                           "note": "quality.energy is mean|psi|^2; loss_per_epoch / final_loss are null (nothing is "
                                   "trained); eager PyTorch"}
        lat = report["metrics"]["latency_ms"]
        print(f"pytorch qca — {a.grid}x{a.grid}, d {a.d_state}, hidden {a.hidden}, {a.law}, {a.steps} steps, "
              f"{torch.get_num_threads()} thread(s)")
        print(f"throughput   {steps_per_s:.2f} steps/s, {flops * steps_per_s / 1e9:.1f} GFLOP/s")
        print(f"step latency p50 {lat['p50']:.2f} ms, min {lat['min']:.2f} ms")
        print(f"energy {energy:.8f}, max |norm - 1| {max_norm_error:.3g}" +
              (f", vs reference rel L2 {rel:.3g}" if rel is not None else ""))
    except Exception as e:  # noqa: BLE001 — any failure becomes an error report
        if a.json:
            common.write_report(a.json, {**report, "status": "error", "message": str(e), "metrics": None, "quality": None})
        print(f"error: {e}", file=sys.stderr)
        return 1
    if a.json:
        common.write_report(a.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
