#!/usr/bin/env python3
"""Tests of scripts/compare.py, the report engine of scripts/compare.sh (meson suite 'scripts').

usage: test_compare.py [unittest options]
(mnist: the stored documents; qca: variants of them carrying bench/qca's fields.)
Standard library only: needs neither torch nor matplotlib. Every case runs compare.py as a program, as
compare.sh does, with matplotlib shadowed by a module that raises ImportError, so the result does not
depend on what is installed. Inputs: the hand-made ferrite-bench/1 documents in tests/scripts/data/ and
variants of them written to a temp dir (each variant that should be schema-valid is validated too, with
scripts/validate_json.py, which needs the `jsonschema` package: without it the tests fail, not skip).
"""
import copy
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPARE = ROOT / "scripts" / "compare.py"
VALIDATE = ROOT / "scripts" / "validate_json.py"
DATA = Path(__file__).resolve().parent / "data"
FERRITE, PYTORCH = DATA / "ferrite-cpu.json", DATA / "pytorch-cpu.json"
COMPILED, FERRITE_CUDA_ERROR = DATA / "pytorch-compile-cpu.json", DATA / "ferrite-error-cuda.json"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class CompareTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="test_compare_")
        self.tmp = Path(self._tmp.name)
        # A package named matplotlib that refuses to import, first on the path: "matplotlib is absent".
        shadow = self.tmp / "shadow" / "matplotlib"
        shadow.mkdir(parents=True)
        (shadow / "__init__.py").write_text('raise ImportError("matplotlib hidden by test_compare.py")\n')
        self.no_matplotlib = str(self.tmp / "shadow")

    def tearDown(self):
        self._tmp.cleanup()

    def compare(self, ferrite, pytorch, *extra, matplotlib=False):
        """Runs compare.py; returns (exit status, stdout, stderr). A Python traceback always fails the test."""
        env = dict(os.environ)
        if not matplotlib:
            env["PYTHONPATH"] = os.pathsep.join(p for p in [self.no_matplotlib, env.get("PYTHONPATH", "")] if p)
        args = [sys.executable, str(COMPARE), "--ferrite", *map(str, ferrite), "--pytorch", *map(str, pytorch),
                *map(str, extra)]
        p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        self.assertNotIn("Traceback", p.stderr, f"compare.py crashed:\n{p.stderr}")
        return p.returncode, p.stdout, p.stderr

    def variant(self, base, name, mutate, valid=True):
        """Writes base (a path or a document) changed by mutate(doc) to the temp dir; validates it if valid."""
        doc = copy.deepcopy(base) if isinstance(base, dict) else load(base)
        mutate(doc)
        path = self.tmp / name
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)  # NaN is written as the NaN literal: only for valid=False cases
        if valid:
            self.assert_valid(path)
        return path

    def assert_valid(self, *paths):
        p = subprocess.run([sys.executable, str(VALIDATE), *map(str, paths)], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, f"test input does not validate against the schema:\n{p.stdout}{p.stderr}")

    def row(self, report, starts):
        """The report line that starts with `starts` (a table row or a verdict)."""
        rows = [line for line in report.splitlines() if line.startswith(starts)]
        self.assertEqual(len(rows), 1, f"expected one line starting {starts!r} in:\n{report}")
        return rows[0]

    def with_throughput(self, base, name, value):
        return self.variant(base, name, lambda d: d["metrics"]["throughput"].update(value=value))

    # --- inputs ---------------------------------------------------------------------------------------------

    def test_stored_inputs_validate(self):
        self.assert_valid(FERRITE, PYTORCH, COMPILED, FERRITE_CUDA_ERROR)

    # --- pass -----------------------------------------------------------------------------------------------

    def test_identical_curves_pass_and_ratio_is_of_medians(self):
        rc, out, _ = self.compare([FERRITE], [PYTORCH])
        self.assertEqual(rc, 0, out)
        self.assertIn("**parity (cpu):** PASS", out)
        self.assertIn("**Result: PASS**", out)
        self.assertNotIn("FAIL", out)
        self.assertNotIn("**NO**", out)
        # 150000 / 37500 samples/s.
        speed = self.row(out, "**speed (cpu, vs PyTorch eager):**")
        self.assertIn("4.00× that of PyTorch eager (faster)", speed)
        self.assertIn("per-repetition ratios 4.00–4.00, n = 1", speed)
        self.assertIn("| 150,000 (150,000–150,000) samples/s |", self.row(out, "| ferrite (0.1.0, 2 threads)"))
        self.assertIn("| 37,500 (37,500–37,500) samples/s |", self.row(out, "| PyTorch eager (2.5.1+cpu, 2 threads)"))
        self.assertIn("| 0 | 1e-05 | yes |", self.row(out, "| first 10 step losses"))
        self.assertIn("| yes |", self.row(out, "| 4 epoch mean losses"))
        self.assertIn("| 0 | 0.01 | yes |", self.row(out, "| test accuracy, absolute difference"))

    def test_modes_are_named_graph_replay_is_never_called_eager(self):
        def graphs(d):
            d["framework"].setdefault("backend", {})["cuda_graphs"] = True
        f = self.variant(FERRITE, "ferrite-graphs.json", graphs)
        p = self.variant(PYTORCH, "pytorch-graphs.json", graphs)
        rc, out, _ = self.compare([f], [p])
        self.assertEqual(rc, 0, out)
        speed = self.row(out, "**speed (cpu, ferrite CUDA graphs vs PyTorch CUDA graphs):**")
        self.assertIn("4.00× that of PyTorch CUDA graphs (faster)", speed)
        self.row(out, "| ferrite CUDA graphs (0.1.0, 2 threads)")
        self.row(out, "| PyTorch CUDA graphs (2.5.1+cpu, 2 threads)")
        self.assertNotIn("eager", out)
        # Only one side replays: each is named as it ran.
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 0, out)
        self.assertIn("that of PyTorch eager", self.row(out, "**speed (cpu, ferrite CUDA graphs vs PyTorch eager):**"))

    def test_slower_ferrite_is_reported_but_not_a_failure(self):
        slow = self.with_throughput(FERRITE, "slow.json", 18750.0)
        rc, out, _ = self.compare([slow], [PYTORCH])
        self.assertEqual(rc, 0, out)
        self.assertIn("0.50× that of PyTorch eager (slower)", out)

    # --- parity failures ------------------------------------------------------------------------------------

    def scaled_step(self, name, step, factor):
        def mutate(d):
            d["quality"]["loss_per_step"][step] *= factor
        return self.variant(FERRITE, name, mutate)

    def test_step_loss_difference_above_tolerance_fails(self):
        rc, out, _ = self.compare([self.scaled_step("step.json", 3, 1 + 3e-5)], [PYTORCH])
        self.assertEqual(rc, 1, out)
        self.assertIn("**parity (cpu):** FAIL", out)
        self.assertIn("**Result: FAIL**", out)
        row = self.row(out, "| first 10 step losses")
        self.assertIn("3e-05", row)
        self.assertTrue(row.endswith("| **NO** |"), row)

    def test_step_loss_difference_within_tolerance_passes(self):
        rc, out, _ = self.compare([self.scaled_step("step.json", 9, 1 + 5e-6)], [PYTORCH])
        self.assertEqual(rc, 0, out)
        self.assertIn("**parity (cpu):** PASS", out)

    def test_step_loss_difference_after_step_10_is_informational(self):
        rc, out, _ = self.compare([self.scaled_step("step.json", 12, 1 + 3e-5)], [PYTORCH])
        self.assertEqual(rc, 0, out)
        self.assertIn("3e-05", self.row(out, "| all 16 step losses, max relative difference (informational)"))

    def test_epoch_loss_difference_above_tolerance_fails(self):
        f = self.variant(FERRITE, "epoch.json", lambda d: d["quality"]["loss_per_epoch"].__setitem__(
            1, d["quality"]["loss_per_epoch"][1] * (1 + 2e-3)))
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 1, out)
        self.assertIn("**parity (cpu):** FAIL", out)
        self.assertTrue(self.row(out, "| 4 epoch mean losses").endswith("| **NO** |"))
        self.assertTrue(self.row(out, "| first 10 step losses").endswith("| yes |"))

    def test_epoch_loss_difference_within_tolerance_passes(self):
        f = self.variant(FERRITE, "epoch.json", lambda d: d["quality"]["loss_per_epoch"].__setitem__(
            3, d["quality"]["loss_per_epoch"][3] * (1 - 5e-4)))
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 0, out)

    def test_epoch_count_mismatch_fails(self):
        f = self.variant(FERRITE, "epochs.json", lambda d: d["quality"]["loss_per_epoch"].pop())
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 1, out)
        self.assertIn("epoch losses: ferrite has 3, PyTorch 4 epochs: not comparable | – |", out)

    def test_accuracy_difference_above_one_point_fails(self):
        for key, label in [("test_accuracy", "test accuracy"), ("train_accuracy", "train accuracy")]:
            with self.subTest(key=key):
                f = self.variant(FERRITE, f"{key}.json", lambda d: d["quality"].update({key: d["quality"][key] - 0.015}))
                rc, out, _ = self.compare([f], [PYTORCH])
                self.assertEqual(rc, 1, out)
                self.assertIn("**parity (cpu):** FAIL", out)
                row = self.row(out, f"| {label}, absolute difference")
                self.assertIn("| 0.015 | 0.01 | **NO** |", row)

    def test_accuracy_difference_below_one_point_passes(self):
        f = self.variant(FERRITE, "acc.json", lambda d: d["quality"].update(test_accuracy=0.9375 + 0.008))
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 0, out)

    def test_accuracy_reported_by_one_side_only_fails(self):
        f = self.variant(FERRITE, "noacc.json", lambda d: d["quality"].update(test_accuracy=None))
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 1, out)
        self.assertIn("| test accuracy: ferrite –, PyTorch 93.75 %: not comparable | – | 0.01 | **NO** |", out)

    def test_missing_step_losses_fail_with_a_reason(self):
        f = self.variant(FERRITE, "nosteps.json", lambda d: d["quality"].pop("loss_per_step"))
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 1, out)
        self.assertIn("per-step losses missing (ferrite 0, PyTorch 16 steps): not comparable", out)

    def test_nan_or_infinite_loss_fails(self):
        # Not schema-valid (strict JSON has no NaN), but Python's json module reads it: must not pass parity.
        # NaN in the middle of the window: a plain max() over the differences would skip it.
        cases = {"nan-step": lambda d: d["quality"]["loss_per_step"].__setitem__(4, float("nan")),
                 "inf-step": lambda d: d["quality"]["loss_per_step"].__setitem__(4, float("inf")),
                 "nan-epoch": lambda d: d["quality"]["loss_per_epoch"].__setitem__(2, float("nan"))}
        for name, mutate in cases.items():
            with self.subTest(name=name):
                rc, out, _ = self.compare([self.variant(FERRITE, name + ".json", mutate, valid=False)], [PYTORCH])
                self.assertEqual(rc, 1, out)
                self.assertIn("**parity (cpu):** FAIL", out)

    # --- failed runs ----------------------------------------------------------------------------------------

    def test_ferrite_error_document_fails_and_names_the_message(self):
        message = load(FERRITE_CUDA_ERROR)["message"]
        rc, out, _ = self.compare([FERRITE, FERRITE_CUDA_ERROR], [PYTORCH])
        self.assertEqual(rc, 1, out)
        self.assertIn(f"- **ferrite run failed** on cuda (ferrite-error-cuda.json): {message}", out)
        self.assertIn("**parity (cpu):** PASS", out)  # the cpu comparison still stands
        self.assertIn("**parity (cuda):** NOT CHECKED", out)
        self.assertIn("**Result: FAIL** — 1 run(s) failed; parity on cuda not checked.", out)

    def test_error_and_success_on_the_same_device_are_grouped(self):
        # An error report has no device object and config.device 'cuda:0'; a success on cuda has device.type
        # 'cuda': both must land in one 'cuda' section, not in 'cuda' and 'cuda:0'.
        def on_cuda(d):
            d["available_devices"] = ["cpu", "cuda:0"]
            d["device"] = {"type": "cuda", "index": 0, "name": "NVIDIA H100 80GB HBM3", "threads": 2}
            d["config"]["device"] = "cuda"
            d["metrics"]["peak_memory_mb"]["device"] = 64.0
        p_cuda = self.variant(PYTORCH, "pytorch-cuda.json", on_cuda)
        rc, out, _ = self.compare([FERRITE_CUDA_ERROR], [p_cuda])
        self.assertEqual(rc, 1, out)
        self.assertNotIn("cuda:0\n", out)
        self.assertEqual(out.count("## cuda"), 1, out)
        self.assertIn("**parity (cuda):** NOT CHECKED — no successful ferrite run on cuda", out)
        self.assertIn("| 64.0 |", self.row(out, "| PyTorch eager"))

    def test_pytorch_missing_for_a_device_is_not_a_pass(self):
        def on_cuda(d):
            d["available_devices"] = ["cpu", "cuda:0"]
            d["device"] = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "threads": 2}
            d["metrics"]["peak_memory_mb"]["device"] = 64.0
        p_cuda = self.variant(PYTORCH, "pytorch-cuda.json", on_cuda)
        rc, out, _ = self.compare([FERRITE], [p_cuda])
        self.assertEqual(rc, 1, out)
        self.assertIn("**parity (cpu):** NOT CHECKED — no successful PyTorch eager run on cpu", out)
        self.assertIn("**parity (cuda):** NOT CHECKED — no successful ferrite run on cuda", out)

    def test_malformed_success_document_is_a_failed_run_not_a_crash(self):
        f = self.variant(FERRITE, "malformed.json", lambda d: d["metrics"].pop("throughput"), valid=False)
        rc, out, _ = self.compare([f], [PYTORCH])
        self.assertEqual(rc, 1, out)
        self.assertIn("malformed report: status is success but metrics.throughput.value is missing", out)

    # --- unreadable input -----------------------------------------------------------------------------------

    def test_missing_input_file_exits_2_with_a_message(self):
        missing = self.tmp / "no-such-run.json"
        rc, out, err = self.compare([FERRITE], [missing])
        self.assertEqual(rc, 2)
        self.assertIn("compare.py: cannot read input", err)
        self.assertIn(str(missing), err)
        self.assertIn("No such file", err)

    def test_unparsable_or_non_object_input_exits_2(self):
        bad = self.tmp / "truncated.json"
        bad.write_text('{"schema": "ferrite-bench/1", ')
        listed = self.tmp / "list.json"
        listed.write_text("[1, 2]")
        for path, why in [(bad, "not valid JSON"), (listed, "not an object")]:
            with self.subTest(path=path.name):
                rc, _, err = self.compare([path], [PYTORCH])
                self.assertEqual(rc, 2)
                self.assertIn(why, err)

    # --- --out, charts --------------------------------------------------------------------------------------

    def test_out_writes_report_and_says_charts_were_skipped_without_matplotlib(self):
        out_dir = self.tmp / "report-dir" / "nested"
        rc, out, _ = self.compare([FERRITE], [PYTORCH], "--out", out_dir, "--title", "mnist: test",
                                  "--command", "scripts/compare.sh mnist --reps 1")
        self.assertEqual(rc, 0, out)
        report = (out_dir / "report.md").read_text(encoding="utf-8")
        self.assertEqual(report.strip(), out.strip())  # the printed report is the file
        self.assertTrue(report.startswith("# mnist: test\n"))
        self.assertIn("Produced by `scripts/compare.sh mnist --reps 1`.", report)
        self.assertIn("Charts skipped: matplotlib is not installed", report)
        self.assertIn("- `ferrite-cpu.json` (ferrite, success)", report)
        self.assertIn("- `pytorch-cpu.json` (pytorch, success)", report)
        self.assertEqual(sorted(p.name for p in out_dir.iterdir()), ["report.md"])

    def test_unwritable_out_exits_2(self):
        blocker = self.tmp / "a-file"
        blocker.write_text("")
        rc, _, err = self.compare([FERRITE], [PYTORCH], "--out", blocker / "sub")
        self.assertEqual(rc, 2)
        self.assertIn("cannot write the report", err)

    @unittest.skipUnless(importlib.util.find_spec("matplotlib"), "matplotlib not installed (charts are optional)")
    def test_out_draws_charts_with_matplotlib(self):
        out_dir = self.tmp / "charts"
        rc, out, _ = self.compare([FERRITE], [PYTORCH], "--out", out_dir, matplotlib=True)
        self.assertEqual(rc, 0, out)
        self.assertIn("![throughput-cpu.png](throughput-cpu.png)", out)
        self.assertIn("![loss-cpu.png](loss-cpu.png)", out)
        for name in ["throughput-cpu.png", "loss-cpu.png"]:
            self.assertEqual((out_dir / name).read_bytes()[:4], b"\x89PNG")

    # --- torch.compile, repetitions -------------------------------------------------------------------------

    def test_torch_compile_gets_its_own_labelled_row_and_ratio(self):
        rc, out, _ = self.compare([FERRITE], [PYTORCH], "--torch-compile", COMPILED)
        self.assertEqual(rc, 0, out)
        self.assertIn("| 50,000 (50,000–50,000) samples/s |", self.row(out, "| PyTorch torch.compile (2.5.1+cpu"))
        self.assertIn("4.00× that of PyTorch eager", self.row(out, "**speed (cpu, vs PyTorch eager):**"))
        self.assertIn("3.00× that of PyTorch torch.compile", self.row(out, "**speed (cpu, vs PyTorch torch.compile):**"))

    def test_repetitions_median_range_and_per_repetition_ratios(self):
        fs = [self.with_throughput(FERRITE, f"f{i}.json", v) for i, v in enumerate([120000.0, 150000.0, 160000.0])]
        ps = [self.with_throughput(PYTORCH, f"p{i}.json", v) for i, v in enumerate([40000.0, 37500.0, 30000.0])]
        rc, out, _ = self.compare(fs, ps)
        self.assertEqual(rc, 0, out)
        self.assertIn("| 150,000 (120,000–160,000) samples/s |", self.row(out, "| ferrite"))
        self.assertIn("| 37,500 (30,000–40,000) samples/s |", self.row(out, "| PyTorch eager"))
        speed = self.row(out, "**speed (cpu, vs PyTorch eager):**")
        # medians 150000 / 37500; pairs 120000/40000 = 3.00, 150000/37500 = 4.00, 160000/30000 = 5.33
        self.assertIn("4.00× that of PyTorch eager", speed)
        self.assertIn("(per-repetition ratios 3.00–5.33, n = 3)", speed)

    def test_even_repetition_count_takes_the_mean_of_the_middle_two(self):
        fs = [self.with_throughput(FERRITE, f"f{i}.json", v) for i, v in enumerate([100000.0, 200000.0])]
        ps = [self.with_throughput(PYTORCH, f"p{i}.json", v) for i, v in enumerate([50000.0, 25000.0])]
        rc, out, _ = self.compare(fs, ps)
        self.assertEqual(rc, 0, out)
        self.assertIn("| 150,000 (100,000–200,000) samples/s |", self.row(out, "| ferrite"))
        self.assertIn("| 37,500 (25,000–50,000) samples/s |", self.row(out, "| PyTorch eager"))
        self.assertIn("4.00× that of PyTorch eager (faster) (per-repetition ratios 2.00–8.00, n = 2)", out)

    def test_failed_repetition_is_left_out_of_the_pairing(self):
        # Repetition 2 of ferrite failed: ratios pair repetition 1 with 1 and 3 with 3, never 3 with 2.
        f_error = self.variant(FERRITE_CUDA_ERROR, "f1.json", lambda d: (
            d["config"].update(device="cpu"), d.update(message="out of memory: bench aborted")))
        fs = [self.with_throughput(FERRITE, "f0.json", 150000.0), f_error,
              self.with_throughput(FERRITE, "f2.json", 120000.0)]
        ps = [self.with_throughput(PYTORCH, f"p{i}.json", v) for i, v in enumerate([37500.0, 10000.0, 30000.0])]
        rc, out, _ = self.compare(fs, ps)
        self.assertEqual(rc, 1, out)
        self.assertIn("- **ferrite run failed** on cpu (f1.json): out of memory: bench aborted", out)
        self.assertIn("| 135,000 (120,000–150,000) samples/s |", self.row(out, "| ferrite"))
        self.assertIn("(per-repetition ratios 4.00–4.00, n = 2)", self.row(out, "**speed (cpu, vs PyTorch eager):**"))

    def test_zero_pytorch_throughput_does_not_crash(self):
        p = self.with_throughput(PYTORCH, "zero.json", 0.0)
        rc, out, _ = self.compare([FERRITE], [p])
        self.assertEqual(rc, 0, out)
        self.assertIn("ratio undefined (PyTorch eager throughput median is 0)", out)

    # --- qca: parity by the state, not by losses ------------------------------------------------------------

    def qca(self, base, name, mutate=None, valid=True, rel=(3e-7, 4e-6, 5e-5)):
        """A bench/qca (or scripts/pytorch/qca.py) document made from the mnist one; `rel`: ferrite's relative
        L2 error after steps 1, 10, 20 (PyTorch documents carry none)."""
        def to_qca(d):
            d["benchmark"] = "qca"
            d["config"] = {"grid": 64, "d_state": 8, "hidden": 32, "law": "unet-unitary", "gamma": 0.01, "steps": 20,
                           "warmup_steps": 0, "threads": 2, "device": "cpu", "weights": "out/weights.safetensors",
                           "initial_state": "out/state.safetensors", "reference_state": ""}
            d["metrics"]["throughput"].update(value=19.5 if d["framework"]["name"] == "ferrite" else 13.0,
                                              unit="steps/s")
            d["metrics"]["latency_ms"]["count"] = 20
            d["quality"] = {"loss_per_epoch": None, "final_loss": None, "train_accuracy": None,
                            "test_accuracy": None, "energy": 0.125, "max_norm_error": 1.2e-7,
                            "rel_l2_vs_reference": None}
            if d["framework"]["name"] == "ferrite":
                d["config"]["reference_state"] = "out/reference.safetensors"
                d["quality"].update(rel_l2_vs_reference=rel[-1], rel_l2_steps=[1, 10, 20], rel_l2_by_step=list(rel))
            if mutate:
                mutate(d)
        return self.variant(base, name, to_qca, valid=valid)

    def test_qca_same_state_passes_with_its_own_checks(self):
        rc, out, _ = self.compare([self.qca(FERRITE, "f.json")], [self.qca(PYTORCH, "p.json")])
        self.assertEqual(rc, 0, out)
        self.assertIn("**parity (cpu):** PASS", out)
        self.assertIn("stepped the same law", out)
        self.assertNotIn("step losses", out)
        self.assertIn("| energy | train acc | test acc |", out)
        self.assertIn("| 19.5 (19.5–19.5) steps/s |", self.row(out, "| ferrite (0.1.0, 2 threads)"))
        self.assertIn("1.50× that of PyTorch eager (faster)", out)
        self.assertIn("| 0 | 0 | yes |", self.row(out, "| settings that differ"))
        self.assertIn("| 3e-07 | 1e-05 | yes |", self.row(out, "| psi after 1 step, relative L2 error vs PyTorch "
                                                          "reference (reference.safetensors)"))
        self.assertIn("| 4e-06 | 0.0001 | yes |", self.row(out, "| psi after 10 steps"))
        self.assertIn("(informational: rounding grows with the horizon) | 5e-05 | – | yes |",
                      self.row(out, "| psi after 20 steps"))
        self.assertIn("| 1.2e-07 | 1e-06 | yes |", self.row(out, "| ferrite: max over cells"))
        self.assertIn("| 1.2e-07 | 1e-06 | yes |", self.row(out, "| PyTorch: max over cells"))
        self.assertIn("| 0 | – | yes |", self.row(out, "| energy = mean(abs(psi)^2), relative difference"))
        table = out.split("| parity check |")[1].split("\n\n")[0]
        for line in table.splitlines()[1:]:
            self.assertEqual(line.count("|"), 5, f"a cell breaks the markdown table: {line}")

    def test_qca_one_step_error_above_tolerance_fails(self):
        rc, out, _ = self.compare([self.qca(FERRITE, "f.json", rel=(3e-5, 4e-5, 5e-5))], [self.qca(PYTORCH, "p.json")])
        self.assertEqual(rc, 1, out)
        self.assertIn("**parity (cpu):** FAIL", out)
        self.assertTrue(self.row(out, "| psi after 1 step").endswith("| 3e-05 | 1e-05 | **NO** |"))
        self.assertTrue(self.row(out, "| psi after 10 steps").endswith("| yes |"))

    def test_qca_short_horizon_bound_and_long_horizon_is_informational(self):
        for rel, rc_want in [((1e-6, 2e-4, 0.1), 1), ((1e-6, 5e-5, 1.4), 0)]:
            with self.subTest(rel=rel):
                rc, out, _ = self.compare([self.qca(FERRITE, "f.json", rel=rel)], [self.qca(PYTORCH, "p.json")])
                self.assertEqual(rc, rc_want, out)
                self.assertIn(f"| {rel[2]:.3g} | – | yes |", self.row(out, "| psi after 20 steps"))

    def test_qca_without_a_one_step_error_is_not_comparable(self):
        def final_only(d):
            d["quality"].pop("rel_l2_steps")
            d["quality"].pop("rel_l2_by_step")
        rc, out, _ = self.compare([self.qca(FERRITE, "f.json", final_only)], [self.qca(PYTORCH, "p.json")])
        self.assertEqual(rc, 1, out)
        self.assertIn("psi after 1 step: ferrite reports no error against a PyTorch reference", out)
        self.assertIn("| 5e-05 | – | yes |", self.row(out, "| psi after 20 steps"))  # the final one is still shown
        none = self.qca(FERRITE, "none.json", lambda d: (final_only(d), d["quality"].update(rel_l2_vs_reference=None)))
        rc, out, _ = self.compare([none], [self.qca(PYTORCH, "p.json")])
        self.assertEqual(rc, 1, out)
        self.assertIn("not comparable | – | 1e-05 | **NO** |", out)

    def test_qca_norm_error_on_either_side_fails(self):
        for base, who in [(FERRITE, "ferrite"), (PYTORCH, "PyTorch")]:
            with self.subTest(side=who):
                bad = self.qca(base, "bad.json", lambda d: d["quality"].update(max_norm_error=3e-6))
                other = self.qca(PYTORCH if base == FERRITE else FERRITE, "other.json")
                f, p = (bad, other) if base == FERRITE else (other, bad)
                rc, out, _ = self.compare([f], [p])
                self.assertEqual(rc, 1, out)
                self.assertTrue(self.row(out, f"| {who}: max over cells").endswith("| 3e-06 | 1e-06 | **NO** |"))

    def test_qca_different_inputs_fail(self):
        p = self.qca(PYTORCH, "p.json", lambda d: d["config"].update(steps=10, weights="other.safetensors"))
        rc, out, _ = self.compare([self.qca(FERRITE, "f.json")], [p])
        self.assertEqual(rc, 1, out)
        row = self.row(out, "| settings that differ")
        self.assertIn("steps 20 vs 10", row)
        self.assertIn("weights 'out/weights.safetensors' vs 'other.safetensors'", row)
        self.assertTrue(row.endswith("| 2 | 0 | **NO** |"), row)
        # Default-initialised laws (no weights file) are not the same law in both frameworks.
        no_files = lambda d: d["config"].update(weights="")  # noqa: E731
        rc, out, _ = self.compare([self.qca(FERRITE, "f.json", no_files)], [self.qca(PYTORCH, "p.json", no_files)])
        self.assertEqual(rc, 1, out)
        self.assertIn("no weights file", self.row(out, "| settings that differ"))

    def test_qca_without_energy_is_a_malformed_run(self):
        f = self.qca(FERRITE, "f.json", lambda d: d["quality"].pop("energy"))
        rc, out, _ = self.compare([f], [self.qca(PYTORCH, "p.json")])
        self.assertEqual(rc, 1, out)
        self.assertIn("malformed report: status is success but quality.energy is missing", out)

    def test_qca_nan_error_fails(self):
        f = self.qca(FERRITE, "f.json", valid=False, rel=(float("nan"), 1e-6, 1e-6))
        rc, out, _ = self.compare([f], [self.qca(PYTORCH, "p.json")])
        self.assertEqual(rc, 1, out)
        self.assertIn("**NO**", self.row(out, "| psi after 1 step"))


class CompareFunctionsTest(unittest.TestCase):
    """The statistics helpers, imported directly."""

    @classmethod
    def setUpClass(cls):
        spec = importlib.util.spec_from_file_location("compare", COMPARE)
        cls.compare = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.compare)

    def test_median(self):
        m = self.compare.median
        self.assertEqual(m([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(m([4.0, 1.0, 3.0, 2.0]), 2.5)
        self.assertEqual(m([7.0]), 7.0)
        self.assertNotEqual(m([]), m([]))  # NaN

    def test_rel_diff_and_worst(self):
        c = self.compare
        self.assertAlmostEqual(c.rel_diff(1.00002, 1.0), 2e-5)
        self.assertEqual(c.rel_diff(0.0, 0.0), 0.0)
        nan = float("nan")
        self.assertNotEqual(c.worst([0.1, nan, 0.5]), c.worst([0.1, nan, 0.5]))  # NaN anywhere → NaN
        self.assertFalse(c.within(nan, 1.0))
        self.assertFalse(c.within(float("inf"), 1.0))
        self.assertTrue(c.within(1e-5, 1e-5))


if __name__ == "__main__":
    unittest.main(verbosity=2)
