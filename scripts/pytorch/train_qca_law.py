#!/usr/bin/env python3
"""Trains a small QCA law in PyTorch, saves it the way Aetheria's trainer does, converts it with
pth_to_safetensors.py, and writes a PyTorch reference trajectory: the real-weights check of bench/qca
(a trained law, not an initialisation; the .pth -> safetensors path included).

  python scripts/pytorch/train_qca_law.py --out /tmp/qca-trained --bench build/bench/qca
  python scripts/pytorch/train_qca_law.py --hidden 6 --f16 --horizon 10 --keep 1 --discard-pth --out tests/data/qca
                                                          (the fixture of tests/models/test_qca_trained.cpp)

Objective (self-supervised, deterministic; --batch 4, 300 steps: a few seconds on one core at hidden 16): one engine step with the law must
reproduce one step of a fixed "quantum walk" rule. Under the rule, component c of every cell moves one cell
in direction c mod 4 (up, right, down, left; nothing enters from outside the open box), is multiplied
by exp(i*pi*(c + 1)/8), and each cell is renormalised. Training states: every component exp(i*phi),
phi ~ U(0, 2 pi), fresh each step (--batch, --grid). Loss: mean |qca_step(law, psi) - rule(psi)|^2 over
all elements, Adam (lr 3e-3), --train-steps steps. The law learns the shifts and phases only partly in
a few hundred steps; what matters here is that its weights are what training makes (GroupNorm affine
parameters and outc moved away from their init), not how good a walker it is.

Files in --out (NAME = qca_trained_d<d>_h<h>):
  NAME.pth                 {'model_state_dict': torch.compile(law).state_dict() (keys '_orig_mod.*'),
                            'optimizer_state_dict', 'epoch', 'loss'}: the layout of their checkpoints
  NAME.safetensors         pth_to_safetensors.py's output (--f16: weights rounded to f16 before saving, so
                           the f16 file is exact)
  NAME_states.safetensors  f32 [1, grid, grid, d, 2]: psi0 (complex_noise, seeded), psi.<k> for each k of
                           --keep and psi (after --horizon steps), stepped by PyTorch with the law read back
                           from NAME.safetensors (unet-unitary, gamma 0.01): what bench/qca
                           --initial-state / --reference-state read
It also steps the same law in float64 and prints how far PyTorch's own f32 trajectory is from it: the
yardstick for ferrite's error (a chaotic law amplifies any rounding difference, whoever makes it).
With --bench PATH, runs bench/qca on those files and prints its relative L2 error at the same steps.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import safetensors.torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pth_to_safetensors  # noqa: E402
from qca_model import QcaUNet, as_real, complex_noise_state, qca_step  # noqa: E402

LAW, GAMMA = "unet-unitary", 0.01


def walk_rule(psi):
    """The target: psi [B, H, W, d] complex; component c shifts by one cell in direction c mod 4 (zero fill),
    gets the phase exp(i pi (c + 1) / 8); each cell is renormalised."""
    d = psi.shape[-1]
    out = torch.zeros_like(psi)
    for c in range(d):
        src = psi[..., c]
        dst = torch.zeros_like(src)
        direction = c % 4
        if direction == 0:    # up: row y takes row y + 1
            dst[:, :-1, :] = src[:, 1:, :]
        elif direction == 1:  # right: column x takes column x - 1
            dst[:, :, 1:] = src[:, :, :-1]
        elif direction == 2:  # down
            dst[:, 1:, :] = src[:, :-1, :]
        else:                 # left
            dst[:, :, :-1] = src[:, :, 1:]
        out[..., c] = dst * complex(math.cos(math.pi * (c + 1) / 8), math.sin(math.pi * (c + 1) / 8))
    return out / (out.abs().pow(2).sum(-1, keepdim=True).sqrt() + 1e-9)


def random_phases(batch, grid, d, generator):
    phi = 2 * math.pi * torch.rand(batch, grid, grid, d, generator=generator)
    return torch.complex(torch.cos(phi), torch.sin(phi))


def train(a):
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    model = QcaUNet(a.d_state, a.hidden, small_outc=True)  # their init, "small deltas"
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    losses = []
    for _ in range(a.train_steps):
        psi = random_phases(a.batch, a.grid, a.d_state, g)
        loss = (qca_step(model, psi, LAW, GAMMA) - walk_rule(psi)).abs().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return model, opt, losses


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-state", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=100, help="steps of the reference trajectory")
    ap.add_argument("--keep", default="1,2,5,10,20,50", help="also store the state after these steps (<= horizon)")
    ap.add_argument("--f16", action="store_true", help="round the trained weights to f16 and store them as f16")
    # One thread: these convolutions are tiny, and on a busy 2-core machine a 2-thread OpenMP pool made a
    # training step 60x slower (0.83 s instead of 12 ms, measured).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bench", default="", help="bench/qca to check against the reference trajectory")
    ap.add_argument("--discard-pth", action="store_true", help="delete NAME.pth once converted (for fixtures)")
    a = ap.parse_args()
    keep = sorted({int(k) for k in a.keep.split(",") if k.strip()})
    if a.grid % 4 or a.horizon < 1 or any(not 1 <= k <= a.horizon for k in keep):
        ap.error("--grid must be a multiple of 4, --horizon positive, every --keep step in 1..horizon")
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    name = f"qca_trained_d{a.d_state}_h{a.hidden}"
    pth, weights, states = (os.path.join(a.out, name + ext) for ext in (".pth", ".safetensors", "_states.safetensors"))

    t0 = time.perf_counter()
    model, opt, losses = train(a)
    seconds = time.perf_counter() - t0
    if a.f16:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
    # What their trainer saves: the compiled module's state_dict ('_orig_mod.' keys). torch.compile only
    # wraps here; nothing is compiled until the wrapper is called, and it never is.
    compiled = torch.compile(model)
    torch.save({"model_state_dict": compiled.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "epoch": a.train_steps, "loss": losses[-1]}, pth)
    report = pth_to_safetensors.convert(pth, weights, dtype="f16" if a.f16 else "f32")
    if a.discard_pth:
        os.remove(pth)
    n = len(losses)
    head, tail = sum(losses[:10]) / min(10, n), sum(losses[-10:]) / min(10, n)
    moved = {k: float(v.float().abs().mean()) for k, v in model.state_dict().items()
             if k in ("outc.weight", "inc.conv_block.1.weight", "conv_up2.conv_block.4.bias")}
    print(f"trained {name}: {a.train_steps} steps in {seconds:.1f} s, loss (mean of 10 steps) {head:.4f} -> {tail:.4f}; "
          f"mean |outc.weight| {moved['outc.weight']:.3g} (init ~1e-5)")
    print(f"{pth} -> {weights}: {report['tensors']} tensors, {report['parameters']:,} parameters, {report['dtype']}, "
          f"{report['bytes']:,} bytes, {report['stripped']} names without _orig_mod.")

    # The reference trajectory, from the weights as ferrite reads them.
    law = QcaUNet(a.d_state, a.hidden)
    law.load_state_dict(safetensors.torch.load_file(weights), strict=True)
    law.eval()
    law64 = QcaUNet(a.d_state, a.hidden).double()
    law64.load_state_dict({k: v.double() for k, v in law.state_dict().items()}, strict=True)
    with torch.inference_mode():
        psi0 = complex_noise_state(1, a.grid, a.grid, a.d_state, torch.Generator().manual_seed(a.seed + 1))
        out = {"psi0": as_real(psi0)}
        psi, psi64, f32_vs_f64 = psi0, psi0.to(torch.complex128), {}
        for k in range(1, a.horizon + 1):
            psi = qca_step(law, psi, LAW, GAMMA)
            psi64 = qca_step(law64, psi64, LAW, GAMMA)
            if k in keep or k == a.horizon:
                f32_vs_f64[k] = float((as_real(psi).double() - as_real(psi64)).norm() / as_real(psi64).norm())
                if k != a.horizon:
                    out[f"psi.{k}"] = as_real(psi)
        out["psi"] = as_real(psi)
        moved1 = float((qca_step(law, psi0, LAW, GAMMA) - psi0).norm() / psi0.norm())
    pth_to_safetensors.write_atomically(states, pth_to_safetensors.serialize(out, {
        "generator": "scripts/pytorch/train_qca_law.py", "law": LAW, "gamma": repr(GAMMA), "steps": str(a.horizon),
        "torch_version": torch.__version__, "seed": str(a.seed)}))
    print(f"{states}: psi0, {', '.join(k for k in out if k.startswith('psi.'))}, psi (after {a.horizon} steps); "
          f"one step moves psi by {moved1:.3f} (relative L2)")
    print("PyTorch f32 vs f64 (the same law), relative L2 error of psi after " +
          ", ".join(f"{k}: {e:.3g}" for k, e in f32_vs_f64.items()))

    if a.bench:
        cmd = [a.bench, "--grid", str(a.grid), "--d-state", str(a.d_state), "--hidden", str(a.hidden), "--law", LAW,
               "--steps", str(a.horizon), "--warmup-steps", "0", "--threads", str(a.threads), "--weights", weights,
               "--initial-state", states, "--reference-state", states, "--json", os.path.join(a.out, name + ".json")]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"bench/qca failed:\n{p.stderr}", file=sys.stderr)
            return 1
        with open(os.path.join(a.out, name + ".json"), encoding="utf-8") as f:
            q = json.load(f)["quality"]
        errors = ", ".join(f"{k}: {e:.3g}" for k, e in zip(q["rel_l2_steps"], q["rel_l2_by_step"]))
        print(f"ferrite bench/qca vs PyTorch f32, relative L2 error of psi after {errors}; max |norm - 1| "
              f"{q['max_norm_error']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
