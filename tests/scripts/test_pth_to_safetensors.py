#!/usr/bin/env python3
"""Tests of scripts/pytorch/pth_to_safetensors.py (meson suite 'scripts', test 'pth-to-safetensors').

Needs torch and safetensors. Without them in this python, the test re-runs itself under $FERRITE_PYTHON
when that is set (e.g. FERRITE_PYTHON=/path/to/venv/bin/python meson test ...), and otherwise exits 77,
which meson reports as SKIP, with the reason printed. With $FERRITE_QCA_EXE (set by meson when the
benchmarks are built) a converted checkpoint is also loaded and stepped by bench/qca.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pytorch" / "pth_to_safetensors.py"
SKIP = 77  # meson's exit status for a skipped test

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("safetensors") is None:
    other = os.environ.get("FERRITE_PYTHON")
    if other and os.path.abspath(other) != os.path.abspath(sys.executable) and not os.environ.get("_PTH_TEST_REEXEC"):
        os.environ["_PTH_TEST_REEXEC"] = "1"
        os.execv(other, [other, __file__, *sys.argv[1:]])
    print(f"SKIP: {sys.executable} has no torch/safetensors (set FERRITE_PYTHON to a python that has them, e.g. the "
          "one scripts/setup-compare.sh prints)")
    sys.exit(SKIP)

import torch  # noqa: E402
import safetensors.torch  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts" / "pytorch"))
import pth_to_safetensors as conv  # noqa: E402
from qca_model import QcaUNet  # noqa: E402

D, H = 2, 8  # the smallest law with more than one GroupNorm group: 2d = 4, h = 8


def law(seed=0):
    torch.manual_seed(seed)
    return QcaUNet(D, H, small_outc=False)


class ConverterTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="test_pth_")
        self.tmp = Path(self._tmp.name)
        self.model = law()
        self.sd = self.model.state_dict()

    def tearDown(self):
        self._tmp.cleanup()

    def save(self, obj, name="ckpt.pth"):
        path = self.tmp / name
        torch.save(obj, path)
        return path

    def run_script(self, *args):
        p = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)
        self.assertNotIn("Traceback", p.stderr, p.stderr)
        return p

    def assert_same_law(self, path):
        loaded = safetensors.torch.load_file(str(path))
        self.assertEqual(set(loaded), set(self.sd))
        for name, t in self.sd.items():
            self.assertTrue(torch.equal(loaded[name], t.float()), name)
        fresh = QcaUNet(D, H)
        fresh.load_state_dict(loaded, strict=True)  # the names are exactly PyTorch's

    # --- names ----------------------------------------------------------------------------------------------

    def test_expected_names_and_shapes_are_the_models(self):
        for d, h in [(D, H), (4, 16), (8, 32)]:
            with self.subTest(d=d, h=h):
                want = {k: tuple(v.shape) for k, v in QcaUNet(d, h).state_dict().items()}
                self.assertEqual(conv.expected_shapes(d, h), want)
        self.assertEqual(sum(torch.Size(s).numel() for s in conv.expected_shapes(8, 32).values()), 1_747_664)

    # --- accepted layouts -----------------------------------------------------------------------------------

    def test_model_state_dict_with_compile_prefix(self):
        compiled = {f"_orig_mod.{k}": v for k, v in self.sd.items()}
        src = self.save({"model_state_dict": compiled, "optimizer_state_dict": {"state": {}}, "epoch": 3,
                         "config": {"lr": 1e-3}})
        p = self.run_script(src, self.tmp / "out.safetensors", "--d-state", D, "--hidden", H)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("'model_state_dict'", p.stdout)
        self.assertIn(f"{len(self.sd)} names without _orig_mod.", p.stdout)
        self.assert_same_law(self.tmp / "out.safetensors")

    def test_state_dict_key_and_bare_state_dict_and_inferred_dims(self):
        for name, obj in [("state_dict", {"state_dict": dict(self.sd), "step": 10}), ("bare", dict(self.sd))]:
            with self.subTest(layout=name):
                out = self.tmp / f"{name}.safetensors"
                p = self.run_script(self.save(obj, f"{name}.pth"), out)  # d_state / hidden inferred
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(f"d_state {D}, hidden {H}", p.stdout)
                self.assert_same_law(out)

    def test_custom_key_and_nested_compile_prefix(self):
        # torch.compile applied to each submodule: 'inc._orig_mod.conv_block.0.weight'
        nested = {".".join([k.split(".")[0], "_orig_mod", *k.split(".")[1:]]): v for k, v in self.sd.items()}
        r = conv.convert(str(self.save({"ema": nested})), str(self.tmp / "o.safetensors"), key="ema")
        self.assertEqual(r["where"], "'ema'")
        self.assert_same_law(self.tmp / "o.safetensors")

    def test_dtype_f16(self):
        out = self.tmp / "half.safetensors"
        p = self.run_script(self.save({"model_state_dict": self.sd}), out, "--dtype", "f16")
        self.assertEqual(p.returncode, 0, p.stderr)
        loaded = safetensors.torch.load_file(str(out))
        self.assertEqual(loaded["outc.weight"].dtype, torch.float16)
        self.assertTrue(torch.equal(loaded["outc.weight"], self.sd["outc.weight"].half()))

    # --- errors ---------------------------------------------------------------------------------------------

    def assert_fails(self, args, status, *needles, out=None):
        p = self.run_script(*args)
        self.assertEqual(p.returncode, status, p.stdout + p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)
        if out is not None:
            self.assertFalse(out.exists(), "an output was written despite the error")
        self.assertEqual([f for f in os.listdir(self.tmp) if ".tmp." in f], [], "temporary file left behind")
        return p.stderr

    def test_missing_file(self):
        out = self.tmp / "o.safetensors"
        self.assert_fails([self.tmp / "nope.pth", out], 2, "nope.pth: no such file", out=out)

    def test_not_a_checkpoint(self):
        junk = self.tmp / "junk.pth"
        junk.write_text("not a checkpoint\n")
        self.assert_fails([junk, self.tmp / "o.safetensors"], 2, "junk.pth: not a PyTorch checkpoint")
        truncated = self.tmp / "truncated.pth"
        truncated.write_bytes(self.save(self.sd).read_bytes()[:2000])
        self.assert_fails([truncated, self.tmp / "o.safetensors"], 2, "truncated.pth: not a readable PyTorch checkpoint")

    def test_not_a_dict(self):
        for name, obj in [("list", [1, 2]), ("tensor", torch.zeros(3))]:
            with self.subTest(obj=name):
                self.assert_fails([self.save(obj, f"{name}.pth"), self.tmp / "o.safetensors"], 1, "not a dict")

    def test_non_tensor_values(self):
        bad = dict(self.sd)
        bad["epoch"] = 3
        self.assert_fails([self.save(bad), self.tmp / "o.safetensors"], 1, "non-tensor value(s) 'epoch' (int)",
                          "no 'model_state_dict' or 'state_dict' key")
        inner = self.assert_fails([self.save({"model_state_dict": {**self.sd, "note": "x"}}),
                                   self.tmp / "o.safetensors"], 1, "'note' (str)")
        self.assertIn("'model_state_dict' is not a state_dict", inner)
        self.assert_fails([self.save({"model_state_dict": [1]}), self.tmp / "o.safetensors"], 1,
                          "'model_state_dict' holds a list")

    def test_missing_and_unexpected_names_are_all_reported(self):
        bad = {k: v for k, v in self.sd.items() if k not in ("up1.bias", "outc.weight")}
        bad["extra.weight"] = torch.zeros(2)
        bad["bot.conv_block.1.running_mean"] = torch.zeros(8 * H)
        out = self.tmp / "o.safetensors"
        err = self.assert_fails([self.save({"model_state_dict": bad}), out, "--d-state", D, "--hidden", H], 1,
                                "missing 'up1.bias', 'outc.weight'",
                                "unexpected 'bot.conv_block.1.running_mean', 'extra.weight'", out=out)
        self.assertNotIn("mis-shaped", err)
        # --drop-unexpected: the extras are left out with a warning, the missing ones still fail.
        self.assert_fails([self.save({"model_state_dict": bad}), out, "--drop-unexpected"], 1, "missing 'up1.bias'")
        ok = dict(self.sd)
        ok["extra.weight"] = torch.zeros(2)
        p = self.run_script(self.save({"model_state_dict": ok}), out, "--drop-unexpected")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("left out 1 unexpected tensor(s): 'extra.weight'", p.stderr)
        self.assert_same_law(out)

    def test_wrong_dims_name_the_checkpoints_own(self):
        out = self.tmp / "o.safetensors"
        err = self.assert_fails([self.save(self.sd), out, "--d-state", "8", "--hidden", "32"], 1,
                                "its inc.conv_block.0.weight says --d-state 2 --hidden 8",
                                "'inc.conv_block.0.weight' is [8, 4, 3, 3], expected [32, 16, 3, 3]", out=out)
        self.assertIn("mis-shaped", err)
        self.assert_fails([self.save(self.sd), out, "--d-state", "8"], 2, "give both --d-state and --hidden")

    def test_cannot_infer_dims_from_a_foreign_state_dict(self):
        foreign = torch.nn.Linear(3, 2).state_dict()
        self.assert_fails([self.save(foreign), self.tmp / "o.safetensors"], 1, "cannot infer --d-state / --hidden",
                          "'weight'")

    def test_prefix_collision_and_non_finite_values(self):
        collide = dict(self.sd)
        collide["_orig_mod.outc.bias"] = self.sd["outc.bias"]
        self.assert_fails([self.save(collide), self.tmp / "o.safetensors"], 1, "both become 'outc.bias'")
        nan = {k: v.clone() for k, v in self.sd.items()}
        nan["up2.weight"][0, 0, 0, 0] = float("nan")
        self.assert_fails([self.save(nan), self.tmp / "o.safetensors"], 1, "'up2.weight' holds 1 non-finite value(s)")

    def test_pickled_objects_need_unsafe_load(self):
        src = self.save({"model_state_dict": self.sd, "args": argparse_namespace()})
        out = self.tmp / "o.safetensors"
        self.assert_fails([src, out], 2, "weights_only=True", "--unsafe-load", out=out)
        p = self.run_script(src, out, "--unsafe-load")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_same_law(out)

    def test_unwritable_output(self):
        self.assert_fails([self.save(self.sd), self.tmp / "no" / "dir" / "o.safetensors"], 2, "cannot write")

    # --- the C++ side reads the result ----------------------------------------------------------------------

    @unittest.skipUnless(os.environ.get("FERRITE_QCA_EXE"), "FERRITE_QCA_EXE not set (bench/qca not built)")
    def test_bench_qca_loads_the_converted_law(self):
        out = self.tmp / "o.safetensors"
        compiled = {f"_orig_mod.{k}": v for k, v in self.sd.items()}
        self.assertEqual(self.run_script(self.save({"model_state_dict": compiled}), out).returncode, 0)
        p = subprocess.run([os.environ["FERRITE_QCA_EXE"], "--grid", "8", "--d-state", str(D), "--hidden", str(H),
                            "--steps", "1", "--warmup-steps", "0", "--weights", str(out)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)


def argparse_namespace():
    import argparse
    return argparse.Namespace(lr=1e-3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
