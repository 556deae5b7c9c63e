#!/usr/bin/env python3
"""Smoke and error-path tests of bench/mnist, run by `meson test` (suite 'bench').

usage: test_mnist_cli.py MNIST_EXE VALIDATE_JSON_PY
Each case runs the real program; JSON output is validated against the ferrite-bench/1 schema.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

MNIST, VALIDATE = sys.argv[1], sys.argv[2]
TINY = ["--samples", "200", "--test-samples", "100", "--epochs", "2", "--batch", "16",
        "--warmup-steps", "2", "--quiet"]
failures = []


def run(args):
    return subprocess.run([MNIST, *args], capture_output=True, text=True, timeout=120)


def check(cond, what, proc=None):
    if not cond:
        detail = f"\n  stdout: {proc.stdout[-800:]}\n  stderr: {proc.stderr[-800:]}" if proc else ""
        failures.append(what + detail)


def validate(path):
    p = subprocess.run([sys.executable, VALIDATE, path], capture_output=True, text=True)
    check(p.returncode == 0, f"{path} does not validate: {p.stdout}{p.stderr}")


with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "ok.json")
    # 1. A tiny successful run: JSON valid, loss falls, config records every flag.
    p = run(TINY + ["--json", out])
    check(p.returncode == 0, "tiny run failed", p)
    check("samples/s" in p.stdout and "accuracy" in p.stdout, "summary table missing", p)
    if os.path.exists(out):
        validate(out)
        doc = json.load(open(out))
        check(doc["status"] == "success", "status is not success")
        losses = doc["quality"]["loss_per_epoch"]
        check(len(losses) == 2 and losses[1] < losses[0], f"loss did not fall: {losses}")
        check(len(doc["quality"]["loss_per_step"]) == 2 * 13, "loss_per_step has the wrong length")
        for key in ["dataset", "samples", "batch", "epochs", "lr", "optimizer", "seed", "threads",
                    "device", "warmup_steps"]:
            check(key in doc["config"], f"config lacks {key}")
        # CUDA graphs are the default only on CUDA: a CPU run records them off.
        check(doc["config"].get("cuda_graphs") is False, f"cpu run records cuda_graphs {doc['config'].get('cuda_graphs')}")

    # 2. Same seed, 1 vs 2 threads: bit-identical loss curves (JSON keeps full double precision).
    a, b = os.path.join(tmp, "t1.json"), os.path.join(tmp, "t2.json")
    p1, p2 = run(TINY + ["--threads", "1", "--json", a]), run(TINY + ["--threads", "2", "--json", b])
    check(p1.returncode == 0 and p2.returncode == 0, "thread runs failed", p1 if p1.returncode else p2)
    if p1.returncode == 0 and p2.returncode == 0:
        q1, q2 = json.load(open(a))["quality"], json.load(open(b))["quality"]
        check(q1["loss_per_step"] == q2["loss_per_step"], "loss curves differ between 1 and 2 threads")

    # 3. save-init → init-from reproduces the run exactly; export-data writes a file.
    w, d, r1, r2 = (os.path.join(tmp, n) for n in ["w.safetensors", "d.safetensors", "r1.json", "r2.json"])
    p = run(TINY + ["--seed", "7", "--save-init", w, "--export-data", d, "--json", r1])
    check(p.returncode == 0 and os.path.exists(w) and os.path.exists(d), "save-init/export-data failed", p)
    p = run(TINY + ["--seed", "7", "--init-from", w, "--json", r2])
    check(p.returncode == 0, "init-from failed", p)
    if os.path.exists(r1) and os.path.exists(r2):
        check(json.load(open(r1))["quality"]["loss_per_step"] == json.load(open(r2))["quality"]["loss_per_step"],
              "init-from the saved initial weights does not reproduce the run")

    # 3b. --profile N times N steps, across epochs when one epoch has fewer batches (13 here), and the
    # per-step figures are per step that ran.
    prof = os.path.join(tmp, "prof.json")
    p = run(TINY + ["--profile", "20", "--json", prof])
    check(p.returncode == 0, "--profile 20 failed", p)
    if os.path.exists(prof):
        pr = json.load(open(prof))["extra"]["profile"]
        check(pr["steps"] == 20, f"profile ran {pr['steps']} steps, asked for 20")
        for o in pr["ops"]:
            check(abs(o["ms_per_step"] * 20 - o["total_ms"]) <= 1e-9 + 1e-9 * o["total_ms"], f"profile row {o}")
        gemm = [o for o in pr["ops"] if o["op"] == "gemm"]
        check(bool(gemm) and gemm[0]["calls"] == 20 * 8, f"gemm calls {gemm[0]['calls'] if gemm else None}, expected 160")

    # 3c. An output naming an input (by another spelling, through a link) is refused and the input kept:
    # --json or --save-init over --init-from used to destroy the weights file.
    if os.path.exists(w):
        before = open(w, "rb").read()
        alias = os.path.join(tmp, "alias.safetensors")
        os.symlink(os.path.basename(w), alias)
        for args in (["--init-from", w, "--json", alias],
                     ["--init-from", alias, "--save-init", os.path.join(tmp, ".", os.path.basename(w))],
                     ["--init-from", w, "--export-data", w]):
            p = run(TINY + args)
            check(p.returncode != 0, f"{args} exited 0", p)
            check("refusing to overwrite an input" in p.stderr, f"{args}: no refusal message", p)
            check(open(w, "rb").read() == before, f"{args} changed the input file")
        p = run(TINY + ["--json", os.path.join(tmp, "same.json"), "--save-init", os.path.join(tmp, "same.json")])
        check(p.returncode != 0 and "one would overwrite the other" in p.stderr, "two outputs on one file accepted", p)

    # 3e. --threads beyond the machine's: the report names the threads that ran (it said 999).
    t999 = os.path.join(tmp, "t999.json")
    p = run(TINY + ["--threads", "999", "--json", t999])
    check(p.returncode == 0, "--threads 999 failed", p)
    if os.path.exists(t999):
        n = json.load(open(t999))["device"]["threads"]
        check(1 <= n <= (os.cpu_count() or 1), f"--threads 999 reported {n} threads on {os.cpu_count()} CPUs")

    # 3d. A rejected command line replaces the previous report with an error report of this run (it used to
    # leave the earlier success in place); a file that is not a ferrite report is not touched; non-finite
    # numbers are refused up front (--weight-decay nan silently became the default).
    stale = os.path.join(tmp, "stale.json")
    p = run(TINY + ["--json", stale])
    check(p.returncode == 0, "run for the stale report failed", p)
    for bad in (["--batch", "0"], ["--weight-decay", "nan"], ["--lr", "inf"], ["--no-such-flag"]):
        p = run(TINY + bad + ["--json", stale])
        check(p.returncode != 0, f"{bad} exited 0", p)
        if os.path.exists(stale):
            doc = json.load(open(stale))
            check(doc["status"] == "error" and "command line rejected" in doc["message"], f"{bad}: stale report kept")
            validate(stale)
    check("finite" in run(TINY + ["--weight-decay", "nan"]).stderr, "--weight-decay nan not refused as non-finite")
    other = os.path.join(tmp, "notes.txt")
    open(other, "w").write("mine")
    run(TINY + ["--batch", "0", "--json", other])
    check(open(other).read() == "mine", "a rejected command line overwrote a file that is not a report")

    # 4. --device cuda without CUDA: status error, a message, the available devices, non-zero exit.
    e = os.path.join(tmp, "err.json")
    p = run(TINY + ["--device", "cuda:7", "--json", e])
    check(p.returncode != 0, "--device cuda:7 exited 0", p)
    check("not available" in p.stderr and "available devices: cpu" in p.stderr, "device error message", p)
    if os.path.exists(e):
        validate(e)
        doc = json.load(open(e))
        check(doc["status"] == "error" and "cuda:7" in doc["message"], "error JSON lacks status/message")
        check("cpu" in doc["available_devices"], "error JSON lacks available_devices")
    else:
        check(False, "no JSON written for the device error")

    # 3f. Decompression amplification (issue 16, item 8): a ~760 KB gzip file of a million blank images
    # made `--samples 100` use 3.1 GB (the whole set was widened to f32, then sliced). Only the samples
    # asked for are read now: the peak memory is that of a tiny run.
    hostile = os.path.join(tmp, "hostile")
    os.makedirs(hostile)
    n_images = 1_000_000
    with open(os.path.join(hostile, "train-images-idx3-ubyte.gz"), "wb") as f:
        z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip wrapper
        f.write(z.compress(struct.pack(">IIII", 0x803, n_images, 28, 28)))
        blank = bytes(784 * 10_000)
        for _ in range(n_images // 10_000):
            f.write(z.compress(blank))
        f.write(z.flush())
    with open(os.path.join(hostile, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(gzip.compress(struct.pack(">II", 0x801, n_images) + bytes(n_images)))
    with open(os.path.join(hostile, "t10k-images-idx3-ubyte.gz"), "wb") as f:
        f.write(gzip.compress(struct.pack(">IIII", 0x803, 100, 28, 28) + bytes(78_400)))
    with open(os.path.join(hostile, "t10k-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(gzip.compress(struct.pack(">II", 0x801, 100) + bytes(100)))
    hj = os.path.join(tmp, "hostile.json")
    p = run(["--dataset", "fashion-mnist", "--data-dir", hostile, "--samples", "100", "--test-samples", "100",
             "--epochs", "1", "--warmup-steps", "0", "--quiet", "--json", hj])
    check(p.returncode == 0, "--samples 100 of a million-image file failed", p)
    if p.returncode == 0:
        peak = json.load(open(hj))["metrics"]["peak_memory_mb"]["host"]
        check(peak < 400, f"--samples 100 of a million-image gzip peaked at {peak} MiB (whole set inflated?)", p)

    # 3g. Size flags are bounded and the message names the bound; seeds do not wrap (--seed -1 was
    # 2^64 - 1, --seed 2^64 was 0); a summary that cannot be written is an error (it exited 0).
    for args, needle in [(["--batch", "99999999999"], "not in range 1 to 1048576"),
                         (["--epochs", "10000000"], "not in range 1 to 1000000"),
                         (["--warmup-steps", "9223372036854775807"], "not in range 0 to 1000000"),
                         (["--samples", "4294967296"], "not in range 0 to 2147483647"),
                         (["--seed", "-1"], "must be a decimal integer in [0, 18446744073709551615]"),
                         (["--seed", "18446744073709551616"], "must be a decimal integer"),
                         (["--seed", "0x10"], "must be a decimal integer")]:
        bj = os.path.join(tmp, "bound.json")
        p = run(TINY + args + ["--json", bj])
        check(p.returncode != 0, f"{args} exited 0", p)
        check(needle in p.stderr + p.stdout, f"{args}: message does not mention {needle!r}", p)
        check(os.path.exists(bj) and json.load(open(bj))["status"] == "error", f"{args}: no error report", p)
    p = run(TINY + ["--seed", "18446744073709551615"])
    check(p.returncode == 0, "the largest seed was refused", p)
    with open("/dev/full", "w") as full:
        p = subprocess.run([MNIST, *TINY], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    check(p.returncode == 1 and "cannot write the summary to standard output" in p.stderr,
          f"stdout on a full device: exit {p.returncode}, stderr {p.stderr[-300:]!r}")

    # 5. Bad input: each exits non-zero with a message naming the problem.
    wnan = os.path.join(tmp, "wnan.safetensors")
    if os.path.exists(w):
        raw = bytearray(open(w, "rb").read())
        raw[-4:] = struct.pack("<f", float("nan"))  # the last tensor's last element
        open(wnan, "wb").write(raw)
    bad_cases = [
        (["--batch", "0"], "--batch"),
        (["--optimizer", "rmsprop"], "--optimizer"),
        (["--no-such-flag"], "no-such-flag"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--cuda-graphs"], "--cuda-graphs needs --device cuda"),  # asked for on the CPU: refused, not ignored
        (["--init-from", wnan], "non-finite"),
        (["--json", ""], "must not be empty"),  # used to write nothing and exit 0  # a NaN weight used to "train" to a NaN loss and exit 0
        (["--init-from", os.path.join(tmp, "missing.safetensors")], "missing.safetensors"),
        (["--init-from", d], "unexpected 'train_images'"),  # the data file is not a weights file
        (["--dataset", "fashion-mnist", "--data-dir", os.path.join(tmp, "nowhere")], "nowhere"),
    ]
    for args, needle in bad_cases:
        p = run(TINY + args)
        check(p.returncode != 0, f"{args} exited 0", p)
        check(needle in (p.stderr + p.stdout), f"{args}: message does not mention {needle!r}", p)

    # 6. Checkpoints: 1 epoch + --checkpoint, then --resume to 2 epochs, equals the 2-epoch run bit for bit
    # (steps, weights through the test loss). A bad checkpoint is refused by name and left as it was.
    ck, whole, resumed = (os.path.join(tmp, n) for n in ("ck.safetensors", "whole.json", "resumed.json"))

    def tiny_with(flag, value):  # TINY with one of its flags changed (CLI11 refuses a repeated option)
        args = list(TINY)
        args[args.index(flag) + 1] = value
        return args

    p = run(TINY + ["--json", whole])
    p1 = run(tiny_with("--epochs", "1") + ["--checkpoint", ck])
    p2 = run(TINY + ["--resume", ck, "--json", resumed])
    check(p.returncode == 0 and p1.returncode == 0 and p2.returncode == 0, "checkpoint runs failed", p2 if p1.returncode == 0 else p1)
    if all(os.path.exists(x) for x in (whole, resumed)):
        wd, r = json.load(open(whole)), json.load(open(resumed))
        check(wd["quality"]["loss_per_step"][13:] == r["quality"]["loss_per_step"],
              "the resumed epoch's losses differ from the uninterrupted run's")
        check(wd["quality"]["test_loss"] == r["quality"]["test_loss"], "the resumed run ends with other weights")
        check(r["extra"].get("resumed_after_epochs") == 1 and len(r["quality"]["loss_per_epoch"]) == 1,
              f"resumed run's extra/epochs: {r['extra'].get('resumed_after_epochs')}, {r['quality']['loss_per_epoch']}")
    ck_bytes = open(ck, "rb").read() if os.path.exists(ck) else b""
    truncated = os.path.join(tmp, "truncated.safetensors")
    open(truncated, "wb").write(ck_bytes[:len(ck_bytes) // 2])
    for args, needle in [
        (tiny_with("--batch", "8") + ["--resume", ck], "batch is '16' in the checkpoint, '8' here"),
        (TINY + ["--resume", ck, "--optimizer", "sgd"], "it holds Adam state, this run uses SGD"),
        (tiny_with("--epochs", "1") + ["--resume", ck], "leaves nothing to train"),
        (TINY + ["--resume", w], "not a ferrite checkpoint"),  # a weights file (--save-init) is not a checkpoint
        (TINY + ["--resume", truncated], "truncated.safetensors"),
    ]:
        p = run(args + ["--checkpoint", ck])
        check(p.returncode != 0 and needle in p.stderr, f"{args}: not refused with {needle!r}", p)
    check(open(ck, "rb").read() == ck_bytes, "a refused --resume changed the checkpoint it names")

if failures:
    print("FAILED:\n- " + "\n- ".join(failures))
    sys.exit(1)
print("all bench/mnist CLI checks passed")
