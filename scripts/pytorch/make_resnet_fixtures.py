#!/usr/bin/env python3
"""Writes tests/data/parity/resnet_step.safetensors: one training step of ferrite's ResNet-18 structure
(scripts/pytorch/resnet_model.py; width 4 so the file stays small: every stage, block, strided shortcut
and BatchNorm of ResNet-18 is there, with 4/8/16/32 channels) on a batch of 4 CIFAR-sized images.

  "init.<name>"      every state_dict entry before the step (parameters and buffers, torchvision names)
  "input" [4, 3, 32, 32] f32, "labels" [4] i64
  "logits" [4, 10], "loss" [1] (mean cross-entropy, label_smoothing 0)
  "grad.<param>"     d loss / d parameter
  "step.<name>"      every state_dict entry after one SGD step (lr 0.1, momentum 0.9, nesterov,
                     weight_decay 5e-4): parameters updated, BN running statistics and
                     num_batches_tracked after the training-mode forward
  "eval_logits" [4, 10]  the stepped model in eval mode on the same input (running statistics)
  "onecycle_lr" [50] the learning rates torch.optim.lr_scheduler.OneCycleLR(max_lr 0.1, total_steps 50,
                     cycle_momentum=False) gives steps 0..49 (f64), for optim/schedule.hpp
Hyper-parameters in __metadata__. Deterministic (torch.manual_seed(0), one thread, CPU).

Usage: python scripts/pytorch/make_resnet_fixtures.py [--out tests/data/parity]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import common_metadata, save_file  # noqa: E402
from resnet_model import ResNet  # noqa: E402

SEED = 0
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "parity"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    model = ResNet(width=4)
    x = torch.randn(4, 3, 32, 32)
    labels = torch.randint(0, 10, (4,), dtype=torch.int64)
    t = {f"init.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    t["input"], t["labels"] = x, labels

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    opt.zero_grad()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    t["logits"], t["loss"] = logits.detach().clone(), loss.detach().reshape(1).clone()
    for k, p in model.named_parameters():
        t[f"grad.{k}"] = p.grad.detach().clone()
    opt.step()
    t.update({f"step.{k}": v.detach().clone() for k, v in model.state_dict().items()})
    model.eval()
    with torch.no_grad():
        t["eval_logits"] = model(x).clone()

    sched_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(sched_opt, max_lr=0.1, total_steps=50, cycle_momentum=False)
    lrs = []
    for _ in range(50):
        lrs.append(sched_opt.param_groups[0]["lr"])
        sched_opt.step()
        sched.step()
    t["onecycle_lr"] = torch.tensor(lrs, dtype=torch.float64)

    meta = common_metadata(SEED)
    meta.update({"generator": "scripts/pytorch/make_resnet_fixtures.py", "lr": repr(LR), "momentum": repr(MOMENTUM),
                 "weight_decay": repr(WEIGHT_DECAY), "nesterov": "True", "width": "4"})
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "resnet_step.safetensors")
    save_file({k: v.contiguous() for k, v in t.items()}, path, meta)
    print(f"wrote {path}: {len(t)} tensors, loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
