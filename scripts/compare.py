#!/usr/bin/env python3
"""Compares ferrite and PyTorch runs of one benchmark (ferrite-bench/1 JSON) and writes a report.

usage: compare.py --ferrite F1.json [F2.json ...] --pytorch P1.json [...] [--torch-compile C1.json ...]
                  [--out DIR] [--title TEXT] [--command TEXT]

Speed: per device, throughput median (min–max), the ferrite/PyTorch ratio of medians with the spread of
the per-repetition ratios (runs alternate A B A B, so repetition i of each ran side by side), latency
p50/p95/p99, peak memory. Parity (from the same initial weights and batches): the first 10 per-step losses
within 1e-5 relative, per-epoch mean losses within 1e-3 relative, final accuracies within 1 percentage
point. Exit status 1 when parity fails or a run errored, 0 otherwise (a slower ferrite is not a failure).
Charts (PNG) need matplotlib; without it the report says so and everything else still works.
"""
import argparse
import json
import os
import sys

STEP_TOL, STEP_COUNT = 1e-5, 10     # relative, first 10 steps (fp32 rounding of one step: ~1e-7)
EPOCH_TOL = 1e-3                    # relative, per-epoch mean loss (rounding grows over thousands of steps)
ACCURACY_TOL = 0.01                 # absolute fraction = one percentage point


def load(paths):
    docs = []
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        d["_path"] = p
        docs.append(d)
    return docs


def median(values):
    s = sorted(values)
    n = len(s)
    if n == 0:
        return float("nan")
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def rel_diff(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def device_key(doc):
    dev = doc.get("device") or {}
    return dev.get("type") or doc.get("config", {}).get("device", "?")


def successful(docs):
    return [d for d in docs if d.get("status") == "success"]


def speed_row(label, docs):
    ok = successful(docs)
    if not ok:
        return None
    tp = [d["metrics"]["throughput"]["value"] for d in ok]
    lat = {q: median([d["metrics"]["latency_ms"][q] for d in ok]) for q in ("p50", "p95", "p99")}
    mem = max(d["metrics"]["peak_memory_mb"]["host"] for d in ok)
    dev_mem = [d["metrics"]["peak_memory_mb"].get("device") for d in ok]
    dev_mem = max(dev_mem) if all(v is not None for v in dev_mem) else None
    q = ok[0]["quality"]
    return {"label": label, "throughput": tp, "median": median(tp), "unit": ok[0]["metrics"]["throughput"]["unit"],
            "latency": lat, "host_mb": mem, "device_mb": dev_mem, "final_loss": q["final_loss"],
            "train_accuracy": q.get("train_accuracy"), "test_accuracy": q.get("test_accuracy"),
            "threads": ok[0]["device"].get("threads"), "version": ok[0]["framework"]["version"]}


def parity(f, p):
    """Checks one ferrite run against one PyTorch run made from the same inputs."""
    checks = []
    fq, pq = f["quality"], p["quality"]
    fs, ps = fq.get("loss_per_step") or [], pq.get("loss_per_step") or []
    n = min(STEP_COUNT, len(fs), len(ps))
    if n:
        worst = max(rel_diff(fs[i], ps[i]) for i in range(n))
        checks.append((f"first {n} step losses, max relative difference", worst, STEP_TOL, worst <= STEP_TOL))
    else:
        checks.append(("per-step losses", float("nan"), STEP_TOL, False))
    fe, pe = fq.get("loss_per_epoch") or [], pq.get("loss_per_epoch") or []
    if fe and len(fe) == len(pe):
        worst = max(rel_diff(a, b) for a, b in zip(fe, pe))
        checks.append((f"{len(fe)} epoch mean losses, max relative difference", worst, EPOCH_TOL, worst <= EPOCH_TOL))
    else:
        checks.append((f"epoch losses ({len(fe)} vs {len(pe)} epochs)", float("nan"), EPOCH_TOL, False))
    for key in ("train_accuracy", "test_accuracy"):
        a, b = fq.get(key), pq.get(key)
        if a is not None and b is not None:
            d = abs(a - b)
            checks.append((f"{key.replace('_', ' ')}, absolute difference", d, ACCURACY_TOL, d <= ACCURACY_TOL))
    if fs and ps and len(fs) == len(ps):
        whole = max(rel_diff(a, b) for a, b in zip(fs, ps))
        checks.append((f"all {len(fs)} step losses, max relative difference (informational)", whole, None, True))
    return checks


def charts(out_dir, rows, curves):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "charts skipped: matplotlib is not installed"
    files = []
    for device, drows in rows.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [r["label"] for r in drows]
        meds = [r["median"] for r in drows]
        lo = [r["median"] - min(r["throughput"]) for r in drows]
        hi = [max(r["throughput"]) - r["median"] for r in drows]
        ax.bar(labels, meds, yerr=[lo, hi], capsize=6, color=["#c0392b", "#2c3e50", "#7f8c8d"][:len(drows)])
        ax.set_ylabel(drows[0]["unit"])
        ax.set_title(f"throughput on {device} (median, bars = min–max)")
        fig.tight_layout()
        name = f"throughput-{device}.png"
        fig.savefig(os.path.join(out_dir, name), dpi=120)
        plt.close(fig)
        files.append(name)
    for device, (f_steps, p_steps) in curves.items():
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(f_steps, label="ferrite", lw=1.2)
        ax.plot(p_steps, label="pytorch", lw=1.2, ls="--")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (batch mean)")
        ax.set_yscale("log")
        ax.set_title(f"loss curves on {device}, same weights and batches")
        ax.legend()
        fig.tight_layout()
        name = f"loss-{device}.png"
        fig.savefig(os.path.join(out_dir, name), dpi=120)
        plt.close(fig)
        files.append(name)
    return files, ""


def fmt_tp(r):
    return f"{r['median']:,.0f} ({min(r['throughput']):,.0f}–{max(r['throughput']):,.0f})"


def fmt_acc(v):
    return "–" if v is None else f"{100 * v:.2f} %"


def build_report(ferrite, pytorch, compiled, title, command):
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Produced by `{command}`.", ""]
    env = (ferrite or pytorch)[0]["env"]
    lines += [f"Machine: {env['cpu']}, {env['cores']} logical cores; {env.get('os', '')}; "
              f"ferrite commit `{env['git_commit'][:12]}`, run at {env['timestamp']}.", ""]
    lines += ["Both frameworks trained the same model from the same initial weights on the same batches in the "
              "same order, with the same thread count, alternating runs (ferrite, PyTorch, ferrite, …). Warm-up "
              "steps are excluded; throughput is the median over epochs of one run, and the table shows the "
              "median over repetitions with the min–max range.", ""]
    failed = False
    errors = [d for d in ferrite + pytorch + compiled if d.get("status") != "success"]
    for d in errors:
        lines.append(f"- **{d['framework']['name']} run failed** ({os.path.basename(d['_path'])}): {d.get('message', '?')}")
        failed = True
    if errors:
        lines.append("")
    rows, curves, verdicts = {}, {}, []
    devices = sorted({device_key(d) for d in ferrite + pytorch})
    for device in devices:
        fd = [d for d in ferrite if device_key(d) == device]
        pd = [d for d in pytorch if device_key(d) == device]
        cd = [d for d in compiled if device_key(d) == device]
        drows = [r for r in (speed_row("ferrite", fd), speed_row("PyTorch eager", pd),
                             speed_row("PyTorch torch.compile", cd)) if r]
        if not drows:
            continue
        rows[device] = drows
        lines += [f"## {device}", "",
                  "| framework | throughput median (min–max) | step p50 / p95 / p99 (ms) | peak host MiB | "
                  "peak device MiB | final loss | train acc | test acc |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in drows:
            lat = r["latency"]
            dev = "–" if r["device_mb"] is None else f"{r['device_mb']:.1f}"
            lines.append(f"| {r['label']} ({r['version']}, {r['threads']} threads) | {fmt_tp(r)} {r['unit']} | "
                         f"{lat['p50']:.3f} / {lat['p95']:.3f} / {lat['p99']:.3f} | {r['host_mb']:.1f} | {dev} | "
                         f"{r['final_loss']:.6f} | {fmt_acc(r['train_accuracy'])} | {fmt_acc(r['test_accuracy'])} |")
        lines.append("")
        fr = next((r for r in drows if r["label"] == "ferrite"), None)
        for other in [r for r in drows if r["label"] != "ferrite"]:
            if not fr:
                break
            pairs = [a / b for a, b in zip(fr["throughput"], other["throughput"])]
            ratio = fr["median"] / other["median"]
            spread = f" (per-repetition ratios {min(pairs):.2f}–{max(pairs):.2f}, n = {len(pairs)})" if pairs else ""
            verdict = f"**speed ({device}, vs {other['label']}):** ferrite is {ratio:.2f}× {other['label']}{spread}."
            lines += [verdict, ""]
            verdicts.append(verdict)
        fs, ps = successful(fd), successful(pd)
        if fs and ps:
            checks = parity(fs[0], ps[0])
            lines += ["| parity check | value | tolerance | ok |", "|---|---|---|---|"]
            for name, value, tol, ok in checks:
                tol_s = "–" if tol is None else f"{tol:g}"
                lines.append(f"| {name} | {value:.3g} | {tol_s} | {'yes' if ok else '**NO**'} |")
            ok_all = all(ok for _, _, _, ok in checks)
            failed |= not ok_all
            verdict = (f"**parity ({device}):** {'PASS' if ok_all else 'FAIL'} — ferrite and PyTorch "
                       f"{'agree' if ok_all else 'disagree'} within the stated fp32 tolerances.")
            lines += ["", verdict, ""]
            verdicts.append(verdict)
            curves[device] = (fs[0]["quality"].get("loss_per_step") or [], ps[0]["quality"].get("loss_per_step") or [])
    return lines, rows, curves, verdicts, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferrite", nargs="+", required=True)
    ap.add_argument("--pytorch", nargs="+", required=True)
    ap.add_argument("--torch-compile", nargs="*", default=[])
    ap.add_argument("--out", default="")
    ap.add_argument("--title", default="ferrite vs PyTorch")
    ap.add_argument("--command", default="")
    args = ap.parse_args(argv)
    try:
        ferrite, pytorch, compiled = load(args.ferrite), load(args.pytorch), load(args.torch_compile)
    except (OSError, json.JSONDecodeError) as e:
        print(f"compare.py: cannot read input: {e}", file=sys.stderr)
        return 2
    lines, rows, curves, verdicts, failed = build_report(ferrite, pytorch, compiled, args.title, args.command)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        files, note = charts(args.out, rows, curves)
        lines += ["## Charts", ""] + [f"![{f}]({f})" for f in files] + ([note] if note else []) + [""]
        lines += ["## Raw results", ""] + [f"- `{os.path.basename(d['_path'])}` ({d['framework']['name']}, {d['status']})"
                                           for d in ferrite + pytorch + compiled] + [""]
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write("\n".join(lines))
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
