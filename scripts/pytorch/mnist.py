#!/usr/bin/env python3
"""PyTorch reference of bench/mnist: the same MLP, data, batch order and initial weights, same JSON schema.

ferrite exports its inputs:   bench/mnist --save-init w.safetensors --export-data d.safetensors
then:                         python scripts/pytorch/mnist.py --init-from w.safetensors --data-from d.safetensors
Data parallel, as `mpirun -np N bench/mnist`:
                              torchrun --standalone --nproc-per-node N scripts/pytorch/mnist.py --ddp ...
                              MASTER_PORT=29500 mpirun -x MASTER_PORT -np N python scripts/pytorch/mnist.py --ddp ...
(DistributedDataParallel over gloo on the CPU, nccl on CUDA; --batch is the global batch, each rank takes
its DistributedSampler share of the exported epoch order, exactly as ferrite's ranks do.)
Flags mirror bench/mnist. Fair-timing rules (docs/benchmarks.md): equal threads, warm-up excluded (and the
weights restored after it), a device sync before every clock read on CUDA, evaluation under inference_mode.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-from", required=True, help="safetensors written by bench/mnist --export-data")
    p.add_argument("--init-from", required=True, help="safetensors written by bench/mnist --save-init")
    p.add_argument("--dataset", default="synthetic", help="label only (the data come from --data-from)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=-1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--eval-batch", type=int, default=1000)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (labelled in the report)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="--device cuda: capture the whole training step in a CUDA graph and replay it, losses read "
                        "back once per epoch, like ferrite's CUDA trainer (labelled in the report; Adam/AdamW run "
                        "with capturable=True, whose bias corrections are computed on the GPU in float)")
    p.add_argument("--allow-tf32", action="store_true",
                   help="--device cuda: TF32 matrix products (labelled in the report; off by default, as ferrite's fp32)")
    p.add_argument("--ddp", action="store_true",
                   help="DistributedDataParallel; start under torchrun (RANK/WORLD_SIZE/MASTER_ADDR from it)")
    p.add_argument("--drop-last", action="store_true", help="--ddp: drop each epoch's tail instead of padding it")
    p.add_argument("--json", default="")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    for name in ["batch", "epochs", "eval_batch"]:
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.lr <= 0:
        p.error("--lr must be positive")
    return args


def make_model():
    return torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, 10))


def make_optimizer(args, params, capturable=False):
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, weight_decay=max(args.weight_decay, 0.0), capturable=capturable)
    if args.optimizer == "adamw":
        wd = args.weight_decay if args.weight_decay >= 0 else 1e-2
        return torch.optim.AdamW(params, lr=args.lr, weight_decay=wd, capturable=capturable)
    return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=max(args.weight_decay, 0.0))


def shard_order(order, rank, world, drop_last):
    """torch.utils.data.DistributedSampler's share of rank `rank` of one epoch's order (= data::shard_order)."""
    n = order.numel()
    per_rank = -(-(n - world) // world) if drop_last and n % world else -(-n // world)
    positions = torch.arange(per_rank) * world + rank
    return order[positions % n]


def train_eager(args, model, train_step, order_dev, n, sync, dist=None):
    """The reference loop: one eager step per batch; .item() reads each loss (on CUDA a sync per step).
    With --ddp (dist = (rank, world)) each rank steps through its share in batches of batch / world, and the
    loss is averaged over ranks (an all-reduce, as ferrite's loss all-gather)."""
    opt = make_optimizer(args, model.parameters())
    rank, world = dist or (0, 1)
    batch = args.batch // world
    step_ms, step_loss, epoch_loss, epoch_seconds, epoch_samples = [], [], [], [], []
    for e in range(args.epochs):
        order = shard_order(order_dev[e], rank, world, args.drop_last) if dist else order_dev[e]
        losses = []
        sync()
        t_epoch = common.now()
        for b in range(0, order.numel(), batch):
            t0 = common.now()
            loss = train_step(opt, order[b:b + batch])
            if dist:
                loss = loss.detach().clone()
                torch.distributed.all_reduce(loss)
                loss /= world
            loss = loss.item()  # .item() syncs, as ferrite reads each loss
            t1 = common.now()
            step_ms.append((t1 - t0) * 1e3)
            losses.append(loss)
        sync()
        epoch_seconds.append(common.now() - t_epoch)
        epoch_samples.append(order.numel() * world)
        step_loss += losses
        epoch_loss.append(sum(losses) / len(losses))
        if not args.quiet and n >= 20000:
            print(f"epoch {e + 1}/{args.epochs} loss {epoch_loss[-1]:.4f}", file=sys.stderr)
    return step_ms, step_loss, epoch_loss, epoch_seconds, epoch_samples


def train_graphed(args, model, initial, x_train, y_train, order_dev, n):
    """--cuda-graphs: the whole step (gather by index, forward, loss, backward, optimizer) captured once in a CUDA
    graph and replayed for every full batch (a partial last batch runs eagerly); the per-step losses stay on the
    GPU until the epoch ends; per-step times are CUDA events between steps. What ferrite's CUDA trainer does."""
    device = x_train.device
    opt = make_optimizer(args, model.parameters(), capturable=True)
    batches = (n + args.batch - 1) // args.batch

    def body(idx):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
        return loss.detach()

    graph, static_idx, static_loss = None, None, None
    if n >= args.batch:
        static_idx = order_dev[0, :args.batch].clone()
        # Warm-up on a side stream before capture (torch.cuda.graphs' rule), then capture (which runs nothing).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                body(static_idx)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = body(static_idx)
    # Back to the initial weights and a fresh optimizer state, in place: the graph holds their addresses.
    # (SGD's momentum buffer restarts from zeros, not from the first gradient: equal when dampening is 0.)
    with torch.no_grad():
        model.load_state_dict(initial)
        for state in opt.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.zero_()
    torch.cuda.synchronize()

    losses_dev = torch.zeros(batches, device=device)
    events = [torch.cuda.Event(enable_timing=True) for _ in range(batches + 1)]
    step_ms, step_loss, epoch_loss, epoch_seconds, epoch_samples = [], [], [], [], []
    for e in range(args.epochs):
        torch.cuda.synchronize()
        t_epoch = common.now()
        events[0].record()
        for s, b in enumerate(range(0, n, args.batch)):
            idx = order_dev[e, b:b + args.batch]
            if graph is not None and idx.numel() == args.batch:
                static_idx.copy_(idx)
                graph.replay()
                losses_dev[s].copy_(static_loss)
            else:
                losses_dev[s].copy_(body(idx))
            events[s + 1].record()
        losses = losses_dev.tolist()  # the epoch's one read-back (syncs)
        torch.cuda.synchronize()
        epoch_seconds.append(common.now() - t_epoch)
        epoch_samples.append(n)
        step_ms += [events[i].elapsed_time(events[i + 1]) for i in range(batches)]
        step_loss += losses
        epoch_loss.append(sum(losses) / len(losses))
        if not args.quiet and n >= 20000:
            print(f"epoch {e + 1}/{args.epochs} loss {epoch_loss[-1]:.4f}", file=sys.stderr)
    return step_ms, step_loss, epoch_loss, epoch_seconds, epoch_samples


def flops_per_sample():
    macs = [784 * 128, 128 * 64, 64 * 10]
    return 2 * macs[0] * 2 + sum(2 * m * 3 for m in macs[1:])  # forward + dW (+ dX after the first layer)


def main(argv):
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    config = {k: v for k, v in vars(args).items() if k != "json"}
    if args.ddp:
        if "WORLD_SIZE" not in os.environ and "OMPI_COMM_WORLD_SIZE" in os.environ:
            # Started by mpirun (as scripts/compare.sh --ranks does, so both sides get the same core binding):
            # torch.distributed's env:// rendezvous from Open MPI's variables; MASTER_PORT comes from the caller.
            os.environ.update(RANK=os.environ["OMPI_COMM_WORLD_RANK"], WORLD_SIZE=os.environ["OMPI_COMM_WORLD_SIZE"],
                              LOCAL_RANK=os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", "0"))
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ["FERRITE_DDP_LAUNCHER"] = "mpirun"
        if "WORLD_SIZE" not in os.environ or "MASTER_PORT" not in os.environ:
            print("mnist.py: --ddp needs torchrun (torchrun --standalone --nproc-per-node 2 mnist.py --ddp ...) or "
                  "mpirun with MASTER_PORT set (MASTER_PORT=29500 mpirun -x MASTER_PORT -np 2 python mnist.py --ddp ...)",
                  file=sys.stderr)
            return 2
        torch.distributed.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
        if args.batch % torch.distributed.get_world_size():
            print(f"mnist.py: --batch {args.batch} must divide among {torch.distributed.get_world_size()} ranks",
                  file=sys.stderr)
            return 2
        if args.device == "cuda":
            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        if torch.distributed.get_rank() != 0:
            args.json, args.quiet = "", True
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        return common.fail(args.json, common.skeleton("mnist", torch.device("cpu"), config), f"bad --device: {e}")
    report = common.skeleton("mnist", device, config)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        return common.fail(args.json, report, f"{args.device} is not available to PyTorch; available devices: "
                           + ", ".join(common.available_devices()))
    try:
        return run(args, device, report)
    except (OSError, RuntimeError, KeyError, ValueError) as e:  # bad files, shapes, CUDA errors
        return common.fail(args.json, report, f"{type(e).__name__}: {e}")


def run(args, device, report):
    # fp32 means fp32: PyTorch's default already keeps TF32 off for matmuls; say so rather than rely on it.
    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    report["framework"]["backend"]["tf32"] = bool(args.allow_tf32)
    if args.compile:
        report["framework"]["backend"]["torch_compile"] = True
    if args.cuda_graphs:
        if device.type != "cuda":
            raise ValueError("--cuda-graphs needs --device cuda")
        if args.compile:
            raise ValueError("--cuda-graphs and --compile do not combine here")
        report["framework"]["backend"]["cuda_graphs"] = True

    data = load_file(args.data_from)
    x_train = data["train_images"].to(device)
    y_train = data["train_labels"].long().to(device)
    x_test = data["test_images"].to(device)
    y_test = data["test_labels"].long().to(device)
    order = data["batch_order"].long()
    if order.shape[0] < args.epochs:
        raise SystemExit(f"mnist.py: {args.data_from} holds batch orders for {order.shape[0]} epochs, "
                         f"--epochs is {args.epochs}")

    model = make_model().to(device)
    init = load_file(args.init_from)
    model.load_state_dict({k: v.to(device) for k, v in init.items()}, strict=True)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    step_model = torch.compile(model) if args.compile else model
    dist = None
    if args.ddp:
        dist = (torch.distributed.get_rank(), torch.distributed.get_world_size())
        step_model = torch.nn.parallel.DistributedDataParallel(step_model)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    n = x_train.shape[0]

    def train_step(opt, idx):
        xb, yb = x_train[idx], y_train[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(step_model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    # Warm-up on throwaway optimizer state, then back to the exported initial weights.
    if args.warmup_steps > 0:
        opt = make_optimizer(args, model.parameters())
        warm_order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed ^ 0x5EED)).to(device)
        for s in range(args.warmup_steps):
            b = s % max(1, (n + args.batch - 1) // args.batch)
            train_step(opt, warm_order[b * args.batch:(b + 1) * args.batch]).item()
        model.load_state_dict(initial)
        sync()

    if args.cuda_graphs:
        step_ms, step_loss, epoch_loss, epoch_seconds, epoch_samples = train_graphed(
            args, model, initial, x_train, y_train, order.to(device), n)
        step_time = "GPU time per step: CUDA events between graph replays (losses read back once per epoch)"
    else:
        if args.ddp and args.cuda_graphs:
            raise ValueError("--cuda-graphs and --ddp do not combine here")
        step_ms, step_loss, epoch_loss, epoch_seconds, epoch_samples = train_eager(
            args, model, train_step, order.to(device), n, sync, dist)
        step_time = "host wall clock per step, .item() after each step"

    def evaluate(x, y):
        correct, total_loss = 0, 0.0
        with torch.inference_mode():
            for b in range(0, x.shape[0], args.eval_batch):
                logits = step_model(x[b:b + args.eval_batch])
                yb = y[b:b + args.eval_batch]
                total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
                correct += (logits.argmax(dim=1) == yb).sum().item()
        return total_loss / x.shape[0], correct / x.shape[0]

    _, train_acc = evaluate(x_train, y_train)
    test_loss, test_acc = evaluate(x_test, y_test)
    throughputs = [s / t for s, t in zip(epoch_samples, epoch_seconds)]
    tput = common.median(throughputs)
    fps = flops_per_sample()
    report["device"] = {"type": device.type, "name": torch.cuda.get_device_name(device) if device.type == "cuda"
                        else common.cpu_model(), "threads": torch.get_num_threads()}
    peak_dev = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    report["metrics"] = {
        "throughput": {"value": tput, "unit": "samples/s", "method": "median over epochs"},
        "latency_ms": common.summarize_ms(step_ms),
        "peak_memory_mb": {"host": common.peak_host_rss_mb(), "device": peak_dev},
        "flops_per_step": float(fps * args.batch),
        "gflops": tput * fps / 1e9,
        "samples_per_s_per_epoch": throughputs,
        "train_seconds": sum(epoch_seconds),
    }
    report["quality"] = {"loss_per_epoch": epoch_loss, "final_loss": epoch_loss[-1], "train_accuracy": train_acc,
                         "test_accuracy": test_acc, "test_loss": test_loss, "loss_per_step": step_loss}
    if dist:
        p50 = torch.tensor([common.summarize_ms(step_ms)["p50"]], dtype=torch.float64)
        every = [torch.zeros_like(p50) for _ in range(dist[1])]
        torch.distributed.all_gather(every, p50)
        report["distributed"] = {
            "world_size": dist[1], "backend": torch.distributed.get_backend(),
            "launcher": os.environ.get("FERRITE_DDP_LAUNCHER", "torchrun"),
            "global_batch": args.batch, "per_rank_batch": args.batch // dist[1],
            "gradient_sync": "DistributedDataParallel: bucketed all-reduce overlapped with backward; loss: all-reduce",
            "per_rank_step_ms_p50": [float(t) for t in torch.cat(every)]}
    report["extra"] = {"model": "mlp 784-128-64-10", "train_samples": n, "test_samples": int(x_test.shape[0]),
                       "steps": len(step_ms), "torch_compile": bool(args.compile), "cuda_graphs": bool(args.cuda_graphs),
                       "step_time": step_time}
    if dist and dist[0] != 0:
        return 0
    print(f"pytorch mnist — {n} train, batch {args.batch}, {args.epochs} epochs, {args.optimizer}, "
          f"{torch.get_num_threads()} thread(s){' , torch.compile' if args.compile else ''}")
    print(f"throughput {tput:.0f} samples/s, step p50 {report['metrics']['latency_ms']['p50'] * 1e3:.1f} µs, "
          f"test accuracy {100 * test_acc:.2f} %, final loss {epoch_loss[-1]:.5f}")
    if args.json:
        common.write_report(args.json, report)
    if args.ddp:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
