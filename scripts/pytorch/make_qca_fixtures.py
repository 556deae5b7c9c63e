#!/usr/bin/env python3
"""Writes the QCA fixtures of tests/models/test_qca.cpp and tests/ops/test_conv.cpp (tests/data/qca/).

  ops.safetensors      each op of the U-Net on odd sizes, computed by torch (f32):
      conv3x3.{x,w,y}        Conv2d(5, 7, 3, padding=1, bias=False) on [5, 9, 11]
      conv1x1.{x,w,b,y}      Conv2d(5, 3, 1) on [5, 9, 11]
      gn20.{x,w,b,y}         GroupNorm(2, 20) (the rule's groups for C = 20) then ELU, on [20, 5, 7]
      gn24.{x,w,b,y}         GroupNorm(3, 24), no ELU, on [24, 3, 5]
      elu.{x,y}              ELU(alpha=1) on 257 values
      maxpool.{x,y}          MaxPool2d(2) on [3, 9, 11] (floor)
      convt.{x,w,b,y}        ConvTranspose2d(6, 5, 2, stride=2) on [6, 4, 7]
  qca_law_d4_h16.safetensors   the U-Net (d_state 4, hidden 16) under its state_dict names, stored as
      f16 to keep the file under 1 MB; the states below were computed with exactly these values (f16
      -> f32), so nothing is lost. Not the tiny-outc init: outc and GroupNorm affine parameters are
      O(0.1..1) so that an error anywhere in the body shows in psi.
  qca_states_d4_g16.safetensors   f32 [1, 16, 16, 4, 2] (re, im):
      psi0                    complex_noise initial state (torch's generator)
      law_out                 f32 [1, 8, 16, 16] = U-Net(X(psi0)) (planar)
      psi1.unet, psi1.unet-unitary     after 1 step, gamma 0.01
      psi10.unet-unitary      after 10 steps

Deterministic (fixed seed, one thread). Usage: python scripts/pytorch/make_qca_fixtures.py [--out tests/data/qca]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import save_file  # noqa: E402  (reproducible safetensors writer)
from qca_model import QcaUNet, as_real, complex_noise_state, qca_step  # noqa: E402

SEED = 20250509
D_STATE, HIDDEN, GRID, GAMMA = 4, 16, 16, 0.01


def metadata():
    return {"generator": "scripts/pytorch/make_qca_fixtures.py", "torch_version": torch.__version__,
            "seed": str(SEED), "d_state": str(D_STATE), "hidden": str(HIDDEN), "grid": str(GRID),
            "gamma": repr(GAMMA)}


def ops_fixture(g):
    f = torch.nn.functional
    t = {}
    x = torch.randn(1, 5, 9, 11, generator=g)
    w = torch.randn(7, 5, 3, 3, generator=g) / 45 ** 0.5
    t.update({"conv3x3.x": x[0], "conv3x3.w": w, "conv3x3.y": f.conv2d(x, w, padding=1)[0]})
    w1, b1 = torch.randn(3, 5, 1, 1, generator=g) / 5 ** 0.5, torch.randn(3, generator=g)
    t.update({"conv1x1.x": x[0], "conv1x1.w": w1, "conv1x1.b": b1, "conv1x1.y": f.conv2d(x, w1, b1)[0]})
    for c, (h, wd), groups, elu in ((20, (5, 7), 2, True), (24, (3, 5), 3, False)):
        xg = 2 * torch.randn(1, c, h, wd, generator=g) + 1
        gw, gb = 1 + 0.3 * torch.randn(c, generator=g), 0.3 * torch.randn(c, generator=g)
        y = f.group_norm(xg, groups, gw, gb, eps=1e-5)
        if elu:
            y = f.elu(y)
        t.update({f"gn{c}.x": xg[0], f"gn{c}.w": gw, f"gn{c}.b": gb, f"gn{c}.y": y[0]})
    xe = 3 * torch.randn(257, generator=g)
    t.update({"elu.x": xe, "elu.y": f.elu(xe)})
    xm = torch.randn(1, 3, 9, 11, generator=g)
    t.update({"maxpool.x": xm[0], "maxpool.y": f.max_pool2d(xm, 2)[0]})
    xt = torch.randn(1, 6, 4, 7, generator=g)
    wt, bt = torch.randn(6, 5, 2, 2, generator=g) / 6 ** 0.5, torch.randn(5, generator=g)
    t.update({"convt.x": xt[0], "convt.w": wt, "convt.b": bt, "convt.y": f.conv_transpose2d(xt, wt, bt, stride=2)[0]})
    return {k: v.detach().clone().contiguous() for k, v in t.items()}


def law_fixture(g):
    torch.manual_seed(SEED)
    model = QcaUNet(D_STATE, HIDDEN, small_outc=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".conv_block.1." in name or ".conv_block.4." in name:  # GroupNorm affine: not 1 / 0
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn(p.shape, generator=g))
        model.outc.weight.mul_(2.0)  # PyTorch default U(+-1/4) -> U(+-1/2): a clearly non-tiny law
        model.outc.bias.copy_(0.1 * torch.randn(model.outc.bias.shape, generator=g))
        for p in model.parameters():  # round to f16 once; the states use these exact values
            p.copy_(p.half().float())
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "qca"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(SEED)

    save_file(ops_fixture(g), os.path.join(args.out, "ops.safetensors"), metadata())

    model = law_fixture(g).eval()
    weights = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(args.out, "qca_law_d4_h16.safetensors"), metadata())

    with torch.inference_mode():
        psi0 = complex_noise_state(1, GRID, GRID, D_STATE, g)
        x = torch.cat([psi0.real, psi0.imag], dim=-1).permute(0, 3, 1, 2).contiguous()
        states = {"psi0": as_real(psi0), "law_out": model(x).contiguous()}
        for law in ("unet", "unet-unitary"):
            states[f"psi1.{law}"] = as_real(qca_step(model, psi0, law, GAMMA))
        psi = psi0
        for _ in range(10):
            psi = qca_step(model, psi, "unet-unitary", GAMMA)
        states["psi10.unet-unitary"] = as_real(psi)
        moved = (states["psi1.unet-unitary"] - states["psi0"]).norm() / states["psi0"].norm()
        print(f"relative change of psi in one unet-unitary step: {moved:.3f}")
    save_file(states, os.path.join(args.out, "qca_states_d4_g16.safetensors"), metadata())
    for name in sorted(os.listdir(args.out)):
        print(name, os.path.getsize(os.path.join(args.out, name)), "bytes")


if __name__ == "__main__":
    main()
