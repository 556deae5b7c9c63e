#!/usr/bin/env python3
"""PyTorch side of bench/resnet18: the same ResNet-18 (scripts/pytorch/resnet_model.py, torchvision names),
the same images, batch order, crops and flips (ferrite's --export-data), the same initial state_dict
(--init-from, ferrite's --save-init), SGD with the same schedule formulas; one ferrite-bench/1 JSON.

  python scripts/pytorch/resnet18.py --data-from d.safetensors --init-from w.safetensors --max-steps 10 --json out.json

Eager by default; labelled variants: --channels-last (NHWC memory format), --compile (torch.compile of
the training step's model), --amp bf16 (autocast; fp32 master weights). Step time: host wall clock per
step with .item() (and a CUDA sync) after each step, warm-up steps excluded and weights restored after.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from resnet_model import ResNet  # noqa: E402


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-from", required=True, help="ferrite's --export-data file (images, batch order, augmentation draws)")
    p.add_argument("--init-from", help="ferrite's --save-init state_dict (else torch's own init from --seed)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=["constant", "cosine", "onecycle"], default="onecycle")
    p.add_argument("--warmup-lr-steps", type=int, default=0)
    p.add_argument("--schedule-steps", type=int, default=0, help="the steps the schedule spans (default: this run's)")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    p.add_argument("--allow-tf32", action="store_true")
    p.add_argument("--float64", action="store_true",
                   help="train in double (a reference trajectory: how far each fp32 run drifts from it)")
    p.add_argument("--profile", type=int, default=0, help="profile this many extra steps with torch.profiler")
    p.add_argument("--json")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines on stderr")
    return p.parse_args(argv)


MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def render(images_u8, idx, draws, pad):
    """ferrite's data/augment.hpp: zero-pad by `pad`, crop at (dy, dx), mirror, then (x/255 - mean) / std in
    torchvision's order of operations (ToTensor divides, Normalize subtracts and divides)."""
    x = images_u8[idx]
    n, c, h, w = x.shape
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty((n, c, h, w), dtype=torch.uint8)
    for k in range(n):
        dy, dx, flip = (int(v) for v in draws[k])
        crop = x[k, :, dy:dy + h, dx:dx + w]
        out[k] = crop.flip(-1) if flip else crop
    return (out.float() / 255 - MEAN) / STD


def lr_at(args, step, total):
    """optim/schedule.hpp (torch's LambdaLR cosine + warm-up and OneCycleLR formulas), for step `step`."""
    if args.schedule == "constant":
        return args.lr
    if args.schedule == "cosine":
        s = min(step, total - 1)
        w = args.warmup_lr_steps
        if s < w:
            return args.lr * ((s + 1) / w)
        return args.lr * (0.5 * (1 + math.cos(math.pi * (s - w) / (total - w))))
    initial = args.lr / 25.0
    min_lr = initial / 1e4
    end0, end1 = 0.3 * total - 1, total - 1
    anneal = lambda a, b, pct: b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)  # noqa: E731
    return anneal(initial, args.lr, step / end0) if step <= end0 else anneal(args.lr, min_lr, (step - end0) / (end1 - end0))


def count_macs(model, chw, device):
    """Multiply-adds of one forward pass per image: convolutions (output elements x Cin x k x k) and Linear."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            total[0] += out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Linear):
            total[0] += mod.in_features * mod.out_features
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        p = next(model.parameters())
        model(torch.zeros((1, *chw), dtype=p.dtype, device=device))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total[0]


def main(argv):
    args = parse(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = dict(vars(args))
    device = torch.device(args.device)
    report = common.skeleton("resnet18", device, config)
    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    from safetensors.torch import load_file
    from safetensors import safe_open
    data = load_file(args.data_from)
    with safe_open(args.data_from, "pt") as f:
        meta = f.metadata()
    pad = int(meta.get("pad", "4"))
    train_x, train_y = data["train_images"], data["train_labels"].long()
    test_x, test_y = data["test_images"], data["test_labels"].long()
    order, draws = data["batch_order"], data["augment"]
    if order.shape[0] < args.epochs:
        return common.fail(args.json, report, f"--data-from has the batch orders of {order.shape[0]} epoch(s), --epochs {args.epochs}")
    classes = int(meta.get("classes", "10"))  # the class count ferrite's model has (bench/resnet18's export)
    model = ResNet(width=args.width, classes=classes)
    if args.init_from:
        state = load_file(args.init_from)
        model.load_state_dict(state, strict=True)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    if args.float64:
        model = model.double()
    step_model = torch.compile(model) if args.compile else model
    n = train_x.shape[0]
    batches = (n + args.batch - 1) // args.batch
    total = batches * args.epochs if args.max_steps < 0 else min(args.max_steps, batches * args.epochs)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def batch_of(step):
        e, b = divmod(step, batches)
        idx = order[e, b * args.batch:(b + 1) * args.batch].long()
        x = render(train_x, idx, draws[e][idx], pad).to(device).contiguous(memory_format=memory_format)
        return (x.double() if args.float64 else x), train_y[idx].to(device)

    def make_opt():
        return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                               weight_decay=args.weight_decay)

    def train_step(opt, x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            logits = step_model(x)
            loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        train_step.correct = (logits.detach().argmax(dim=1) == y).sum()
        return loss

    model.train()
    if args.warmup_steps > 0:
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        opt = make_opt()
        for s in range(min(args.warmup_steps, total if total > 0 else args.warmup_steps)):
            x, y = batch_of(s % max(total, 1))
            train_step(opt, x, y).item()
        model.load_state_dict(initial)
        sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    opt = make_opt()
    step_ms, step_loss, epoch_loss, test_acc, test_loss = [], [], [], [], []
    run_start = common.now()

    def evaluate():
        model.eval()
        correct, total_loss = 0, 0.0
        with torch.inference_mode():
            for b in range(0, test_x.shape[0], args.eval_batch):
                x = ((test_x[b:b + args.eval_batch].float() / 255 - MEAN) / STD).to(device).contiguous(memory_format=memory_format)
                x = x.double() if args.float64 else x
                y = test_y[b:b + args.eval_batch].to(device)
                logits = model(x).float()
                total_loss += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(dim=1) == y).sum().item()
        model.train()
        return total_loss / test_x.shape[0], correct / test_x.shape[0]

    losses, correct, seen, train_acc = [], 0, 0, []
    for s in range(total):
        x, y = batch_of(s)  # the input pipeline is outside the timed step, as ferrite's prefetch
        for g in opt.param_groups:
            g["lr"] = lr_at(args, s, args.schedule_steps if args.schedule_steps > 0 else total)
        t0 = common.now()
        loss = train_step(opt, x, y).item()
        sync()
        step_ms.append((common.now() - t0) * 1e3)
        step_loss.append(loss)
        losses.append(loss)
        correct += int(train_step.correct.item())
        seen += int(y.shape[0])
        if (s + 1) % batches == 0 or s + 1 == total:
            epoch_loss.append(sum(losses) / len(losses))
            train_acc.append(correct / seen)
            losses, correct, seen = [], 0, 0
            tl, ta = evaluate()
            test_loss.append(tl)
            test_acc.append(ta)
            if not args.quiet:
                print(f"epoch {len(epoch_loss)}: test accuracy {100 * ta:.2f} %", file=sys.stderr)
    images = min(total * args.batch, sum(min(args.batch, n - (s % batches) * args.batch) for s in range(total)))
    tput = images / (sum(step_ms) / 1e3) if step_ms else 0.0
    macs = count_macs(model, train_x.shape[1:], device)  # as models/resnet.hpp counts them (555,422,720 at width 64)
    flops_image = 6 * macs
    profile = None
    if args.profile > 0:
        from torch.profiler import ProfilerActivity, profile as tprofile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with tprofile(activities=acts) as prof:
            for s in range(args.profile):
                x, y = batch_of(s % max(total, 1))
                train_step(opt, x, y).item()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
        print(table, file=sys.stderr)
        profile = [{"op": e.key, "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / args.profile, "calls": e.count}
                   for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:20]]
    report["device"] = {"type": device.type, "name": torch.cuda.get_device_name(device) if device.type == "cuda"
                        else common.cpu_model(), "threads": torch.get_num_threads()}
    report["framework"]["backend"].update({"memory_format": "channels_last" if args.channels_last else "nchw",
                                          "torch_compile": bool(args.compile), "amp": args.amp,
                                          "dtype": "float64" if args.float64 else "float32"})
    peak_dev = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    report["metrics"] = {
        "throughput": {"value": tput, "unit": "images/s", "method": "images over the summed step times"},
        "latency_ms": common.summarize_ms(step_ms),
        "peak_memory_mb": {"host": common.peak_host_rss_mb(), "device": peak_dev},
        "flops_per_step": float(flops_image * args.batch),
        "gflops": tput * flops_image / 1e9,
        "train_seconds": common.now() - run_start,
    }
    report["quality"] = {"loss_per_epoch": epoch_loss, "final_loss": epoch_loss[-1] if epoch_loss else None,
                         "test_accuracy_per_epoch": test_acc, "test_loss_per_epoch": test_loss,
                         "test_accuracy": test_acc[-1] if test_acc else None, "loss_per_step": step_loss,
                         "train_accuracy": train_acc[-1] if train_acc else None, "train_accuracy_per_epoch": train_acc}
    report["extra"] = {"model": f"resnet18-cifar width {args.width}",
                       "train_accuracy": "running accuracy over each epoch's augmented training batches (the steps' own logits)", "train_samples": n, "test_samples": int(test_x.shape[0]),
                       "steps": len(step_ms), "profile": profile,
                       "step_time": "host wall clock per step (forward + loss + backward + SGD, .item()), batch rendered before"}
    print(f"pytorch resnet18 — {n} train, batch {args.batch}, {len(step_ms)} steps, {torch.get_num_threads()} thread(s), "
          f"{'channels_last' if args.channels_last else 'NCHW'}{', torch.compile' if args.compile else ''}"
          f"{', amp bf16' if args.amp == 'bf16' else ''}")
    print(f"throughput {tput:.1f} images/s, step p50 {report['metrics']['latency_ms']['p50']:.1f} ms, "
          f"test accuracy {100 * test_acc[-1]:.2f} %" if test_acc else "")
    if args.json:
        common.write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
