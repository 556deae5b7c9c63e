#!/usr/bin/env python3
"""Smoke and error-path tests of bench/resnet18, run by `meson test` (suite 'bench').

usage: test_resnet18_cli.py RESNET18_EXE VALIDATE_JSON_PY
A narrow network (--width 4) on a few synthetic images so that each run takes about a second; the bad
inputs (corrupt and truncated JPEGs, an image of another size, an empty class folder, a CIFAR .bin of the
wrong length, a state_dict of another model, bad flags) must each exit non-zero, name the file and what
is wrong, and leave an existing file in the --json place untouched.
"""
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

EXE, VALIDATE = sys.argv[1], sys.argv[2]
BASE = ["--train-samples", "64", "--test-samples", "32", "--batch", "16", "--epochs", "2", "--warmup-steps", "1",
        "--quiet"]
TINY = BASE + ["--width", "4", "--schedule", "cosine"]
failures = []


def run(args, cwd=None):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def check(cond, what, proc=None):
    if not cond:
        detail = f"\n  stdout: {proc.stdout[-800:]}\n  stderr: {proc.stderr[-800:]}" if proc else ""
        failures.append(what + detail)


def validate(path):
    p = subprocess.run([sys.executable, VALIDATE, path], capture_output=True, text=True)
    check(p.returncode == 0, f"{path} does not validate: {p.stdout}{p.stderr}")


def refuse(args, needles, what, cwd=None):
    """The run must fail with a message containing every needle and leave an error report (status error,
    schema-valid) at --json; a CLI error leaves a file that is not a report alone."""
    with tempfile.TemporaryDirectory() as t:
        report = os.path.join(t, "err.json")
        p = run(args + ["--json", report], cwd=cwd)
        check(p.returncode != 0, f"{what}: exit status 0", p)
        for n in needles:
            check(n in p.stderr, f"{what}: stderr lacks {n!r}", p)
        if os.path.exists(report):
            validate(report)
            check(json.load(open(report))["status"] == "error", f"{what}: the report does not say error")


# Two baseline JPEGs (made once with PIL, quality 75; embedded so that no imaging module is needed):
# a 32 x 32 image and a 40 x 32 one (another size than the rest of its folder).
JPEG_32 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcp"
    "LDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy"
    "MjIyMjIyMjIyMjIyMjL/wAARCAAgACADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA"
    "AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6"
    "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG"
    "x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
    "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE"
    "xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDnaKKK+1PRCiiigAooooAKKKKAP//Z")
JPEG_40x32 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcp"
    "LDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy"
    "MjIyMjIyMjIyMjIyMjL/wAARCAAgACgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA"
    "AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6"
    "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG"
    "x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
    "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE"
    "xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCOiiivkD83CiiigAooooAKKKKACiiigAoo"
    "ooA//9k=")


with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "ok.json")
    # 1. A tiny run: JSON valid, losses and per-epoch test accuracy recorded, FLOP count stated.
    p = run(TINY + ["--json", out])
    check(p.returncode == 0, "tiny run failed", p)
    check("images/s" in p.stdout and "test acc" in p.stdout, "summary table missing", p)
    if os.path.exists(out):
        validate(out)
        doc = json.load(open(out))
        check(doc["status"] == "success", "status is not success")
        q = doc["quality"]
        check(len(q["loss_per_step"]) == 8 and len(q["test_accuracy_per_epoch"]) == 2,
              f"expected 8 steps and 2 evaluations: {len(q['loss_per_step'])}, {q['test_accuracy_per_epoch']}")
        check(doc["extra"]["flops_per_image"] > 0 and doc["metrics"]["throughput"]["unit"] == "images/s",
              "FLOP count or throughput unit missing")

    # 2. 1 vs 2 threads: bit-identical loss curves (augmentation draws and kernels independent of threads).
    a, b = os.path.join(tmp, "t1.json"), os.path.join(tmp, "t2.json")
    p1, p2 = run(TINY + ["--threads", "1", "--json", a]), run(TINY + ["--threads", "2", "--json", b])
    check(p1.returncode == 0 and p2.returncode == 0, "thread runs failed", p1 if p1.returncode else p2)
    if p1.returncode == 0 and p2.returncode == 0:
        la, lb = json.load(open(a))["quality"]["loss_per_step"], json.load(open(b))["quality"]["loss_per_step"]
        check(la == lb, f"1 and 2 threads differ: {la} vs {lb}")

    # 2b. The warm-up restores weights, BatchNorm statistics and optimizer: 0 or 3 warm-up steps, the same run.
    def with_warmup(n):
        args = list(TINY)
        args[args.index("--warmup-steps") + 1] = str(n)
        return args
    w0, w3 = os.path.join(tmp, "w0.json"), os.path.join(tmp, "w3.json")
    q0, q3 = run(with_warmup(0) + ["--json", w0]), run(with_warmup(3) + ["--json", w3])
    check(q0.returncode == 0 and q3.returncode == 0, "warm-up runs failed", q0 if q0.returncode else q3)
    if q0.returncode == 0 and q3.returncode == 0:
        check(json.load(open(w0))["quality"]["loss_per_step"] == json.load(open(w3))["quality"]["loss_per_step"],
              "warm-up steps changed the timed run")

    # 3. --save-init / --init-from: a run from the saved state_dict repeats the run that saved it.
    init, c, d = os.path.join(tmp, "init.safetensors"), os.path.join(tmp, "c.json"), os.path.join(tmp, "d.json")
    pc = run(TINY + ["--seed", "7", "--save-init", init, "--json", c])
    pd = run(TINY + ["--seed", "7", "--init-from", init, "--json", d])
    check(pc.returncode == 0 and pd.returncode == 0, "save/init round trip failed", pc if pc.returncode else pd)
    if pc.returncode == 0 and pd.returncode == 0:
        check(json.load(open(c))["quality"]["loss_per_step"] == json.load(open(d))["quality"]["loss_per_step"],
              "a run from the saved initial state differs from the run that saved it")
    # --save / --resume: epoch 2 resumed from the epoch-1 checkpoint repeats the uninterrupted run's steps.
    ck, full, part, rest = (os.path.join(tmp, n) for n in ("ck.safetensors", "full.json", "part.json", "rest.json"))
    sched = ["--schedule-steps", "8"]  # the whole 2-epoch schedule in all three runs
    pf = run(TINY + sched + ["--json", full])
    pp = run(TINY + sched + ["--max-steps", "4", "--save", ck, "--json", part])
    pr = run(TINY + sched + ["--resume", ck, "--json", rest])
    check(pf.returncode == 0 and pp.returncode == 0 and pr.returncode == 0, "save/resume runs failed",
          pf if pf.returncode else pp if pp.returncode else pr)
    if pf.returncode == 0 and pr.returncode == 0:
        lf, lr = json.load(open(full))["quality"]["loss_per_step"], json.load(open(rest))["quality"]["loss_per_step"]
        check(lf[4:] == lr, f"the resumed epoch differs from the uninterrupted run: {lf[4:]} vs {lr}")
    one_epoch = [a for a in TINY if a not in ("--epochs", "2")] + ["--epochs", "1"]
    refuse(one_epoch + sched + ["--resume", ck], ["nothing to train"], "resume with nothing left")
    # A --max-steps cut inside an epoch writes no checkpoint (it would claim the epoch done).
    cut_ck = os.path.join(tmp, "cut.safetensors")
    p = run(TINY + sched + ["--max-steps", "3", "--save", cut_ck])
    check(p.returncode == 0 and not os.path.exists(cut_ck), "a partial epoch wrote a checkpoint", p)
    refuse(TINY + ["--schedule-steps", "16", "--resume", ck], ["schedule"], "resume with another schedule")
    refuse(BASE + ["--width", "8", "--schedule", "cosine"] + sched + ["--resume", ck], ["model"], "resume of another model")
    # --export-data: images, orders and augmentation draws for PyTorch.
    exp = os.path.join(tmp, "data.safetensors")
    pe = run(TINY + ["--max-steps", "1", "--export-data", exp])
    check(pe.returncode == 0 and os.path.getsize(exp) > 64 * 3072, "export failed", pe)

    # 4. Bad input.
    refuse(TINY + ["--init-from", os.path.join(tmp, "nope.safetensors")], ["nope.safetensors"], "missing --init-from")
    wide = os.path.join(tmp, "wide.safetensors")
    check(run(BASE + ["--width", "8", "--max-steps", "1", "--schedule", "constant", "--save-init", wide]).returncode == 0,
          "width-8 export failed")
    refuse(TINY + ["--init-from", wide], ["wide.safetensors", "'conv1.weight' has shape [8, 3, 3, 3], the model expects [4, 3, 3, 3]"],
           "state_dict of another model")
    refuse(TINY + ["--bogus"], ["--bogus"], "unknown flag")
    refuse(BASE + ["--schedule", "triangle"], ["--schedule"], "unknown schedule")
    refuse(TINY + ["--device", "cuda:7"], ["cuda:7"], "missing device")
    refuse(BASE + ["--width", "4", "--schedule", "onecycle", "--max-steps", "2"], ["onecycle"], "a schedule too short for onecycle")
    # An existing file that is not a report is never replaced by the report of a rejected command line.
    notes = os.path.join(tmp, "notes.txt")
    with open(notes, "w") as f:
        f.write("not a report")
    p = run(TINY + ["--bogus", "--json", notes])
    check(p.returncode != 0 and open(notes).read() == "not a report", "a rejected command line overwrote a file", p)
    # The report may not overwrite an input.
    p = run(TINY + ["--init-from", init, "--json", init])
    check(p.returncode != 0 and os.path.getsize(init) > 1000, "--json over --init-from was not refused", p)

    # CIFAR-10 binary of the wrong length (not whole 3,073-byte records).
    bins = os.path.join(tmp, "bins")
    os.makedirs(bins)
    for name in ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin",
                 "test_batch.bin"]:
        with open(os.path.join(bins, name), "wb") as f:
            f.write(bytes(3073 * 4 + (100 if name == "data_batch_3.bin" else 0)))
    refuse(TINY + ["--dataset", "cifar10", "--data-dir", bins], ["data_batch_3.bin"], "CIFAR .bin of the wrong length")

    def folder(name, files):
        root = os.path.join(tmp, name)
        for split in ("train", "test"):
            for cls, items in files.items():
                os.makedirs(os.path.join(root, split, cls), exist_ok=True)
                for fname, data in items:
                    with open(os.path.join(root, split, cls, fname), "wb") as f:
                        f.write(data)
        return root
    j = JPEG_32
    ok = folder("ok", {"a": [("0.jpg", j), ("1.jpg", j)], "b": [("0.jpg", j), ("1.jpg", j)]})
    p = run(TINY + ["--dataset", "imagefolder", "--data-dir", ok])
    check(p.returncode == 0, "a good ImageFolder failed", p)
    if p.returncode != 0 and "libjpeg" in p.stderr:
        print("note: this build has no libjpeg-turbo; the JPEG cases only check that it says so")
    else:
        corrupt = folder("corrupt", {"a": [("0.jpg", j), ("1.jpg", b"\xff\xd8garbage")], "b": [("0.jpg", j)]})
        refuse(TINY + ["--dataset", "imagefolder", "--data-dir", corrupt], ["1.jpg"], "corrupt JPEG")
        cut = folder("cut", {"a": [("0.jpg", j), ("1.jpg", j[: len(j) // 2])], "b": [("0.jpg", j)]})
        refuse(TINY + ["--dataset", "imagefolder", "--data-dir", cut], ["1.jpg"], "truncated JPEG")
        empty = folder("empty", {"a": [("0.jpg", j)], "b": []})
        refuse(TINY + ["--dataset", "imagefolder", "--data-dir", empty], [os.path.join("train", "b")], "empty class folder")
        sized = folder("sized", {"a": [("0.jpg", j), ("1.jpg", JPEG_40x32)], "b": [("0.jpg", j)]})
        refuse(TINY + ["--dataset", "imagefolder", "--data-dir", sized], ["1.jpg"], "an image of another size")

if failures:
    print(f"{len(failures)} failure(s):")
    for f in failures:
        print(" -", f)
    sys.exit(1)
print("all resnet18 CLI checks passed")
