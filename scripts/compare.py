#!/usr/bin/env python3
"""Compares ferrite and PyTorch runs of one benchmark (ferrite-bench/1 JSON) and writes a report.

usage: compare.py --ferrite F1.json [F2.json ...] --pytorch P1.json [...] [--torch-compile C1.json ...]
                  [--channels-last L1.json ...] [--out DIR] [--title TEXT] [--command TEXT]

Speed: per device, throughput median (min–max), the ferrite/PyTorch ratio of medians with the spread of
the per-repetition ratios (runs alternate A B A B, so repetition i of each ran side by side), latency
p50/p95/p99, peak memory. Parity (from the same initial weights and batches): the first 10 per-step losses
within 1e-5 relative, per-epoch mean losses within 1e-3 relative, final accuracies within 1 percentage
point. For benchmark "qca" (a simulation: no loss) parity is instead: the same inputs on both sides,
ferrite's state against a PyTorch reference state from those inputs (quality.rel_l2_steps /
rel_l2_by_step, written by bench/qca --reference-state) within 1e-5 relative L2 after 1 step and 1e-4 up
to 10 steps (later steps informational), and every cell's norm 1 +- 1e-6 on both sides.
Exit status 1 when parity fails or a run errored, 0 otherwise (a slower ferrite is not a failure).
Charts (PNG) need matplotlib; without it the report says so and everything else still works.
Exit status 2 when an input cannot be read (missing file, not JSON, not a JSON object) or --out cannot be
written. Repetition i of a device is the i-th file given for that device, errored runs included.
A NaN or infinite loss fails parity; a document that lacks a field the report needs counts as a failed run.
"""
import argparse
import json
import math
import os
import sys

STEP_TOL, STEP_COUNT = 1e-5, 10     # relative, first 10 steps (fp32 rounding of one step: ~1e-7)
STEP_TOL_BY_BENCHMARK = {"resnet18": 1e-4}
# With --spread (PyTorch from the same inputs with another thread count): fp32 trajectories of a deep
# BatchNorm network decorrelate within a few steps (ResNet-18, batch 128, lr 0.004: PyTorch 1 vs 2
# threads 1.4e-4 at step 5, 7.8e-4 at step 9), so step i also passes when ferrite's difference to
# PyTorch is within SPREAD_FACTOR x PyTorch's own largest difference up to step i. Both columns are
# printed per step: the allowance is stated, never silent.
SPREAD_FACTOR = 10.0
EPOCH_TOL = 1e-3                    # relative, per-epoch mean loss (rounding grows over thousands of steps)
ACCURACY_TOL = 0.01                 # absolute fraction = one percentage point
# qca: relative L2 error of psi against PyTorch. One step: the bound (measured 3e-7 .. 1e-6). Up to
# 10 steps: tests/models/test_qca.cpp's bound. Later steps are informational: with a law whose output is not
# tiny the dynamics are chaotic and f32 rounding differences grow exponentially with the horizon (measured
# at 64x64 with a default-initialised law: 7e-7, 7e-6, 5e-5, 1.4 after 1, 10, 20, 100 steps), so a bound
# there would measure the law's sensitivity, not ferrite.
QCA_ONE_STEP_TOL, QCA_SHORT_HORIZON, QCA_SHORT_TOL = 1e-5, 10, 1e-4
QCA_NORM_TOL = 1e-6                 # | ||psi_cell|| - 1 | after a step, both sides
QCA_SAME_INPUTS = ("grid", "d_state", "hidden", "law", "gamma", "steps", "weights", "initial_state")


class InputError(Exception):
    pass


def load(paths):
    docs = []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise InputError(f"{p}: {e.strerror or e}") from e
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise InputError(f"{p}: not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise InputError(f"{p}: not a ferrite-bench/1 document (top level is {type(d).__name__}, not an object)")
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


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def rel_diff(a, b):
    if not (is_number(a) and is_number(b)):
        return float("nan")
    return abs(a - b) / max(abs(b), 1e-30)


def worst(diffs):
    """The largest difference; NaN if any is NaN (max() would silently skip a NaN after the first element)."""
    diffs = list(diffs)
    if any(math.isnan(d) for d in diffs):
        return float("nan")
    return max(diffs)


def within(value, tol):
    return not math.isnan(value) and value <= tol  # NaN and inf (a diverged loss) never pass


def device_key(doc):
    """'cpu' or 'cuda': an error report has no device object, only config.device, which may read 'cuda:0'."""
    dev = doc.get("device")
    key = dev.get("type") if isinstance(dev, dict) else None
    if not key:
        config = doc.get("config")
        key = config.get("device") if isinstance(config, dict) else None
    return str(key).split(":")[0] if key else "?"


# Fields the report reads from a successful run: dotted path → what it must be.
NEEDED = {"framework.name": str, "framework.version": str, "device.threads": "number",
          "metrics.throughput.value": "number", "metrics.throughput.unit": str,
          "metrics.latency_ms.p50": "number", "metrics.latency_ms.p95": "number", "metrics.latency_ms.p99": "number",
          "metrics.peak_memory_mb.host": "number", "quality.final_loss": "number", "quality.loss_per_epoch": list}


# qca trains nothing: its loss slots are null (the schema allows it) and the energy takes their column.
NEEDED_QCA = {k: v for k, v in NEEDED.items() if k not in ("quality.final_loss", "quality.loss_per_epoch")}
NEEDED_QCA["quality.energy"] = "number"


def unusable(doc):
    """Why a run cannot go into the report (a message), or None when it is a usable successful run."""
    if doc.get("status") != "success":
        message = doc.get("message")
        return message if isinstance(message, str) and message else f"status is {doc.get('status')!r}, no message"
    for path, kind in (NEEDED_QCA if doc.get("benchmark") == "qca" else NEEDED).items():
        node = doc
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return f"malformed report: status is success but {path} is missing"
        if not (is_number(node) if kind == "number" else isinstance(node, kind)):
            return f"malformed report: {path} is {node!r}, not a {kind if kind == 'number' else kind.__name__}"
    return None


def successful(docs):
    return [d for d in docs if unusable(d) is None]


def framework_name(doc):
    fw = doc.get("framework")
    return fw.get("name", "?") if isinstance(fw, dict) else "?"


def speed_row(label, docs):
    ok = successful(docs)
    if not ok:
        return None
    tp = [d["metrics"]["throughput"]["value"] for d in ok]
    # Per repetition (None where that run failed), to pair repetition i of two frameworks.
    per_rep = [d["metrics"]["throughput"]["value"] if unusable(d) is None else None for d in docs]
    lat = {q: median([d["metrics"]["latency_ms"][q] for d in ok]) for q in ("p50", "p95", "p99")}
    mem = max(d["metrics"]["peak_memory_mb"]["host"] for d in ok)
    dev_mem = [d["metrics"]["peak_memory_mb"].get("device") for d in ok]
    dev_mem = max(dev_mem) if all(v is not None for v in dev_mem) else None
    q = ok[0]["quality"]
    return {"label": label, "throughput": tp, "per_rep": per_rep, "median": median(tp),
            "unit": ok[0]["metrics"]["throughput"]["unit"], "latency": lat, "host_mb": mem, "device_mb": dev_mem,
            "final_loss": q["energy"] if ok[0].get("benchmark") == "qca" else q["final_loss"],
            "train_accuracy": q.get("train_accuracy"), "test_accuracy": q.get("test_accuracy"),
            "threads": ok[0]["device"].get("threads"), "version": ok[0]["framework"]["version"],
            "distributed": ok[0].get("distributed"),
            "comm_share": median([d["distributed"]["comm_share"] for d in ok])
            if all("comm_share" in (d.get("distributed") or {}) for d in ok) else None}


def run_mode(docs):
    """The execution mode the runs were labelled with (framework.backend flags): 'CUDA graphs', 'TF32', ...
    A report names it, so a graph-replay run is never presented as eager (or fp32 as TF32)."""
    ok = successful(docs)
    if not ok:
        return ""
    backend = ok[0].get("framework", {}).get("backend") or {}
    if not isinstance(backend, dict):
        return ""
    names = [("cuda_graphs", "CUDA graphs"), ("torch_compile", "torch.compile"), ("tf32", "TF32")]
    return ", ".join(label for key, label in names if backend.get(key) is True)


def parity(f, p, spread=None):
    """Checks one ferrite run against one PyTorch run made from the same inputs (and, with `spread`, a
    PyTorch run of another thread count from those inputs, whose difference to `p` is PyTorch's own spread)."""
    checks = []
    fq, pq = f["quality"], p["quality"]
    fs, ps = fq.get("loss_per_step") or [], pq.get("loss_per_step") or []
    n = min(STEP_COUNT, len(fs), len(ps))
    step_tol = STEP_TOL_BY_BENCHMARK.get(f.get("benchmark"), STEP_TOL)
    ss = ((spread or {}).get("quality") or {}).get("loss_per_step") or []
    if n and len(ss) >= n:
        envelope, ok_all, worst_ratio = 0.0, True, 0.0
        for i in range(n):
            own = rel_diff(ss[i], ps[i])
            envelope = max(envelope, own)
            allowed = max(step_tol, SPREAD_FACTOR * envelope)
            d = rel_diff(fs[i], ps[i])
            ok_all = ok_all and within(d, allowed)
            worst_ratio = max(worst_ratio, d / allowed if allowed > 0 else float("inf"))
            checks.append((f"step {i} loss: ferrite vs PyTorch (PyTorch {spread['device'].get('threads')} vs "
                           f"{p['device'].get('threads')} threads: {own:.2g}; allowed max({step_tol:g}, "
                           f"{SPREAD_FACTOR:g} x {envelope:.2g}))", d, allowed, within(d, allowed)))
        checks.append((f"first {n} step losses within PyTorch's own spread (largest share of the allowance)",
                       worst_ratio, 1.0, ok_all))
    elif n:
        w = worst(rel_diff(fs[i], ps[i]) for i in range(n))
        checks.append((f"first {n} step losses, max relative difference", w, step_tol, within(w, step_tol)))
    else:
        checks.append((f"per-step losses missing (ferrite {len(fs)}, PyTorch {len(ps)} steps): not comparable",
                       float("nan"), step_tol, False))
    fe, pe = fq.get("loss_per_epoch") or [], pq.get("loss_per_epoch") or []
    if fe and len(fe) == len(pe):
        w = worst(rel_diff(a, b) for a, b in zip(fe, pe))
        checks.append((f"{len(fe)} epoch mean losses, max relative difference", w, EPOCH_TOL, within(w, EPOCH_TOL)))
    else:
        checks.append((f"epoch losses: ferrite has {len(fe)}, PyTorch {len(pe)} epochs: not comparable",
                       float("nan"), EPOCH_TOL, False))
    for key in ("train_accuracy", "test_accuracy"):
        a, b = fq.get(key), pq.get(key)
        name = key.replace("_", " ")
        if is_number(a) and is_number(b):
            d = abs(a - b)
            checks.append((f"{name}, absolute difference", d, ACCURACY_TOL, within(d, ACCURACY_TOL)))
        elif a is not None or b is not None:  # one side reports it, the other does not: cannot vouch for it
            checks.append((f"{name}: ferrite {fmt_acc(a)}, PyTorch {fmt_acc(b)}: not comparable",
                           float("nan"), ACCURACY_TOL, False))
    if fs and ps and len(fs) == len(ps):
        whole = worst(rel_diff(a, b) for a, b in zip(fs, ps))
        checks.append((f"all {len(fs)} step losses, max relative difference (informational)", whole, None, True))
    return checks


def qca_parity(f, p):
    """Checks a ferrite bench/qca run against a PyTorch run made from the same law and initial state."""
    checks = []
    fc, pc = f.get("config") or {}, p.get("config") or {}
    differ = [f"{k} {fc.get(k)!r} vs {pc.get(k)!r}" for k in QCA_SAME_INPUTS if fc.get(k) != pc.get(k)]
    differ += [f"no {k} file" for k in ("weights", "initial_state") if not fc.get(k)]
    name = "settings that differ (grid, d_state, hidden, law, gamma, steps, weights and initial-state files)"
    checks.append((name + (": " + "; ".join(differ) if differ else ""), len(differ), 0, not differ))
    fq, pq = f["quality"], p["quality"]
    steps, errors = fq.get("rel_l2_steps"), fq.get("rel_l2_by_step")
    if not (isinstance(steps, list) and isinstance(errors, list) and len(steps) == len(errors) and steps):
        final = fq.get("rel_l2_vs_reference")  # a run compared only after its last step
        steps, errors = ([fc.get("steps")], [final]) if final is not None else ([], [])
    by_step = dict(zip(steps, errors))
    ref = os.path.basename(str(fc.get("reference_state") or "?"))
    if 1 not in by_step:
        checks.append((f"psi after 1 step: ferrite reports no error against a PyTorch reference ({ref}) after 1 step "
                       "(bench/qca --reference-state with psi.1, or --steps 1): not comparable",
                       float("nan"), QCA_ONE_STEP_TOL, False))
    for k in sorted(by_step, key=lambda k: k if is_number(k) else float("inf")):
        e = by_step[k]
        value = float(e) if is_number(e) else float("nan")
        label = f"psi after {k} step{'s' if k != 1 else ''}, relative L2 error vs PyTorch reference ({ref})"
        if k == 1:
            checks.append((label, value, QCA_ONE_STEP_TOL, within(value, QCA_ONE_STEP_TOL)))
        elif is_number(k) and k <= QCA_SHORT_HORIZON:
            checks.append((label, value, QCA_SHORT_TOL, within(value, QCA_SHORT_TOL)))
        else:
            checks.append((label + " (informational: rounding grows with the horizon)", value, None, True))
    for who, q in (("ferrite", fq), ("PyTorch", pq)):
        e = q.get("max_norm_error")
        value = float(e) if is_number(e) else float("nan")
        checks.append((f"{who}: max over cells of abs(norm(psi) - 1)", value, QCA_NORM_TOL, within(value, QCA_NORM_TOL)))
    checks.append(("energy = mean(abs(psi)^2), relative difference (informational: 1/d after any step, whatever the law)",
                   rel_diff(fq.get("energy"), pq.get("energy")), None, True))
    return checks


def charts(out_dir, rows, curves):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # ImportError, or a broken install (e.g. a numpy ABI mismatch)
        return [], f"Charts skipped: matplotlib is not installed or does not import ({type(e).__name__}: {e})."
    try:
        return draw_charts(plt, out_dir, rows, curves), ""
    except Exception as e:  # a chart is a nicety: never lose the report over one
        return [], f"Charts skipped: drawing failed ({type(e).__name__}: {e})."


def draw_charts(plt, out_dir, rows, curves):
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
        if not f_steps or not p_steps:
            continue
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
    return files


def fmt_rate(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"  # steps/s of a large grid can be below 1


def fmt_tp(r):
    return f"{fmt_rate(r['median'])} ({fmt_rate(min(r['throughput']))}–{fmt_rate(max(r['throughput']))})"


def fmt_acc(v):
    return f"{100 * v:.2f} %" if is_number(v) else "–"


def fmt_ratio(fr, other):
    """'4.00× …' of medians plus the spread of per-repetition ratios, pairing repetition i with repetition i."""
    if not other["median"] > 0:
        return f"ratio undefined ({other['label']} throughput median is {other['median']:g})"
    ratio = fr["median"] / other["median"]
    pairs = [a / b for a, b in zip(fr["per_rep"], other["per_rep"]) if a is not None and b is not None and b > 0]
    spread = f" (per-repetition ratios {min(pairs):.2f}–{max(pairs):.2f}, n = {len(pairs)})" if pairs else ""
    faster = "faster" if ratio > 1 else "slower" if ratio < 1 else "equal"
    return f"ferrite's throughput is {ratio:.2f}× that of {other['label']} ({faster}){spread}"


def build_report(ferrite, pytorch, compiled, title, command, channels_last=(), spread=()):
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Produced by `{command}`.", ""]
    env = (ferrite or pytorch)[0].get("env")
    env = env if isinstance(env, dict) else {}
    lines += [f"Machine: {env.get('cpu', '?')}, {env.get('cores', '?')} logical cores; {env.get('os', '?')}; "
              f"ferrite commit `{str(env.get('git_commit', '?'))[:12]}`, run at {env.get('timestamp', '?')}.", ""]
    qca = (ferrite or pytorch)[0].get("benchmark") == "qca"
    if qca:
        lines += ["Both frameworks stepped the same law (one weights file) from the same initial state, with the "
                  "same thread count, alternating runs (ferrite, PyTorch, ferrite, …). Warm-up steps are excluded; "
                  "throughput is the timed steps over their wall time in one run, and the table shows the median "
                  "over repetitions with the min–max range; the energy column is mean |psi|^2. Accuracy is "
                  "ferrite's state against a PyTorch reference run from the same inputs (relative L2 error).", ""]
    else:
        lines += ["Both frameworks trained the same model from the same initial weights on the same batches in the "
                  "same order, with the same thread count, alternating runs (ferrite, PyTorch, ferrite, …). Warm-up "
                  "steps are excluded; throughput is the median over epochs of one run, and the table shows the "
                  "median over repetitions with the min–max range.", ""]
    failed = False
    channels_last = list(channels_last)
    errors = [d for d in ferrite + pytorch + compiled + channels_last if unusable(d) is not None]
    for d in errors:
        lines.append(f"- **{framework_name(d)} run failed** on {device_key(d)} ({os.path.basename(d['_path'])}): "
                     f"{unusable(d)}")
        failed = True
    if errors:
        lines.append("")
    rows, curves, verdicts = {}, {}, []
    problems = [f"{len(errors)} run(s) failed"] if errors else []  # for the closing one-line result
    devices = sorted({device_key(d) for d in ferrite + pytorch})
    for device in devices:
        fd = [d for d in ferrite if device_key(d) == device]
        pd = [d for d in pytorch if device_key(d) == device]
        cd = [d for d in compiled if device_key(d) == device]
        ld = [d for d in channels_last if device_key(d) == device]
        pmode = run_mode(pd)
        drows = [r for r in (speed_row("ferrite", fd), speed_row(f"PyTorch {pmode or 'eager'}", pd),
                             speed_row(f"PyTorch {run_mode(ld) or 'eager'} channels_last", ld),
                             speed_row("PyTorch torch.compile", cd)) if r]
        fmode = run_mode(fd)
        if not drows:
            verdict = f"**parity ({device}):** NOT CHECKED — no successful run on {device}."
            lines += [f"## {device}", "", verdict, ""]
            verdicts.append(verdict)
            problems.append(f"parity on {device} not checked")
            failed = True
            continue
        rows[device] = drows
        lines += [f"## {device}", "",
                  "| framework | throughput median (min–max) | step p50 / p95 / p99 (ms) | peak host MiB | "
                  f"peak device MiB | {'energy' if qca else 'final loss'} | train acc | test acc |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in drows:
            lat = r["latency"]
            dev = "–" if r["device_mb"] is None else f"{r['device_mb']:.1f}"
            shown = f"ferrite {fmode}" if r["label"] == "ferrite" and fmode else r["label"]
            dist = r.get("distributed")
            if dist:  # data parallel: ranks x threads, the transport, and (ferrite) the time in collectives
                comm = "" if r.get("comm_share") is None else f", {100 * r['comm_share']:.0f} % in collectives"
                where = f"{dist['world_size']} ranks × {r['threads']} threads, {dist['backend']}{comm}"
            else:
                where = f"{r['threads']} threads"
            lines.append(f"| {shown} ({r['version']}, {where}) | {fmt_tp(r)} {r['unit']} | "
                         f"{lat['p50']:.3f} / {lat['p95']:.3f} / {lat['p99']:.3f} | {r['host_mb']:.1f} | {dev} | "
                         f"{r['final_loss']:.6f} | {fmt_acc(r['train_accuracy'])} | {fmt_acc(r['test_accuracy'])} |")
        lines.append("")
        fr = next((r for r in drows if r["label"] == "ferrite"), None)
        for other in [r for r in drows if r["label"] != "ferrite"]:
            if not fr:
                break
            who = f"ferrite {fmode} " if fmode else ""
            verdict = f"**speed ({device}, {who}vs {other['label']}):** {fmt_ratio(fr, other)}."
            lines += [verdict, ""]
            verdicts.append(verdict)
        fs, ps = successful(fd), successful(pd)
        if not (fs and ps):
            missing = "ferrite" if not fs else f"PyTorch {pmode or 'eager'}"
            verdict = f"**parity ({device}):** NOT CHECKED — no successful {missing} run on {device} to compare with."
            lines += [verdict, ""]
            verdicts.append(verdict)
            problems.append(f"parity on {device} not checked")
            failed = True
        else:
            sp = [d for d in successful(list(spread)) if device_key(d) == device]
            checks = qca_parity(fs[0], ps[0]) if qca else parity(fs[0], ps[0], sp[0] if sp else None)
            lines += [f"Parity compares `{os.path.basename(fs[0]['_path'])}` with `{os.path.basename(ps[0]['_path'])}`.",
                      "", "| parity check | value | tolerance | ok |", "|---|---|---|---|"]
            for name, value, tol, ok in checks:
                tol_s = "–" if tol is None else f"{tol:g}"
                value_s = "–" if math.isnan(value) and "not comparable" in name else f"{value:.3g}"
                lines.append(f"| {name} | {value_s} | {tol_s} | {'yes' if ok else '**NO**'} |")
            ok_all = all(ok for _, _, _, ok in checks)
            if not ok_all:
                failed = True
                problems.append(f"parity on {device} failed")
            verdict = (f"**parity ({device}):** PASS — ferrite and PyTorch agree within the stated fp32 tolerances."
                       if ok_all else f"**parity ({device}):** FAIL — ferrite and PyTorch differ beyond the stated "
                       "fp32 tolerances, or could not be compared (rows marked NO).")
            lines += ["", verdict, ""]
            verdicts.append(verdict)
            curves[device] = (fs[0]["quality"].get("loss_per_step") or [], ps[0]["quality"].get("loss_per_step") or [])
    if failed:
        lines += [f"**Result: FAIL** — {'; '.join(problems)}.", ""]
    else:
        lines += ["**Result: PASS** — every run succeeded and parity holds (speed is reported, not judged).", ""]
    return lines, rows, curves, verdicts, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferrite", nargs="+", required=True)
    ap.add_argument("--pytorch", nargs="+", required=True)
    ap.add_argument("--torch-compile", nargs="*", default=[])
    ap.add_argument("--channels-last", nargs="*", default=[], help="PyTorch runs in the channels_last memory format")
    ap.add_argument("--spread", nargs="*", default=[],
                    help="PyTorch runs from the same inputs with another thread count (its own fp32 spread)")
    ap.add_argument("--out", default="")
    ap.add_argument("--title", default="ferrite vs PyTorch")
    ap.add_argument("--command", default="")
    args = ap.parse_args(argv)
    try:
        ferrite, pytorch, compiled = load(args.ferrite), load(args.pytorch), load(args.torch_compile)
        channels_last, spread = load(args.channels_last), load(args.spread)
    except InputError as e:
        print(f"compare.py: cannot read input: {e}", file=sys.stderr)
        return 2
    lines, rows, curves, verdicts, failed = build_report(ferrite, pytorch, compiled, args.title, args.command,
                                                         channels_last, spread)
    if args.out:
        try:
            os.makedirs(args.out, exist_ok=True)
            files, note = charts(args.out, rows, curves)
            lines += ["## Charts", ""] + [f"![{f}]({f})" for f in files] + ([note] if note else []) + [""]
            lines += ["## Raw results", ""] + [f"- `{os.path.basename(d['_path'])}` ({framework_name(d)}, "
                                               f"{d.get('status', '?')})" for d in ferrite + pytorch + compiled + channels_last] + [""]
            with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines))
        except OSError as e:
            print("\n".join(lines))
            print(f"compare.py: cannot write the report to {args.out}: {e}", file=sys.stderr)
            return 2
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
