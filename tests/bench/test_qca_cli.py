#!/usr/bin/env python3
"""Smoke and error-path tests of bench/qca, run by `meson test` (suite 'bench').

usage: test_qca_cli.py QCA_EXE VALIDATE_JSON_PY
Each case runs the real program on a tiny lattice (16x16, d 4, hidden 16, a few steps); every JSON it
writes is validated against the ferrite-bench/1 schema. Standard library only: the malformed state files
are written here with a minimal safetensors writer (u64 header length, JSON header, little-endian data).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

QCA, VALIDATE = sys.argv[1], sys.argv[2]
failures = []


def tiny(grid="16", d_state="4", hidden="16", steps="3"):
    """The tiny run's flags, one of each (CLI11 refuses a repeated option)."""
    return ["--grid", grid, "--d-state", d_state, "--hidden", hidden, "--steps", steps, "--warmup-steps", "1"]


TINY = tiny()


def run(args):
    return subprocess.run([QCA, *args], capture_output=True, text=True, timeout=120)


def check(cond, what, proc=None):
    if not cond:
        detail = f"\n  stdout: {proc.stdout[-800:]}\n  stderr: {proc.stderr[-800:]}" if proc else ""
        failures.append(what + detail)
    return cond


def validate(path):
    p = subprocess.run([sys.executable, VALIDATE, path], capture_output=True, text=True)
    check(p.returncode == 0, f"{path} does not validate: {p.stdout}{p.stderr}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_safetensors(path, tensors):
    """tensors: {name: (shape, [float, ...])} as F32."""
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read_safetensors(path):
    """{name: bytes} of a safetensors file (the raw data, for bit-exact comparisons)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    return {k: blob[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in header.items() if k != "__metadata__"}


def png_chunks(path):
    """[(type, data)] of a PNG file; checks the signature and every CRC."""
    with open(path, "rb") as f:
        blob = f.read()
    check(blob[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG signature")
    chunks, at = [], 8
    while at + 12 <= len(blob):
        n, kind = struct.unpack(">I4s", blob[at:at + 8])
        data = blob[at + 8:at + 8 + n]
        crc = struct.unpack(">I", blob[at + 8 + n:at + 12 + n])[0]
        check(crc == zlib.crc32(kind + data), f"{path}: bad CRC in chunk {kind}")
        chunks.append((kind.decode("latin-1"), data))
        at += 12 + n
    check(at == len(blob), f"{path}: trailing bytes after the last chunk")
    return chunks


def expect_error(args, needle, code=None, json_path=None):
    """The run must fail with `needle` in its output and, when json_path is given, a valid error JSON."""
    extra = ["--json", json_path] if json_path else []
    p = run(args + extra)
    check(p.returncode != 0, f"{args} exited 0", p)
    check(needle in p.stderr + p.stdout, f"{args}: message does not mention {needle!r}", p)
    if json_path:
        if check(os.path.exists(json_path), f"{args}: no error JSON written", p):
            validate(json_path)
            doc = load(json_path)
            check(doc["status"] == "error" and needle in doc["message"], f"{args}: error JSON lacks the message")
            check(doc["metrics"] is None and doc["quality"] is None, f"{args}: error JSON carries numbers")
            if code:
                check(doc.get("error", {}).get("code") == code, f"{args}: error code {doc.get('error')} != {code}")
    return p


with tempfile.TemporaryDirectory() as tmp:
    path = lambda name: os.path.join(tmp, name)  # noqa: E731

    # 1. A tiny successful run: valid JSON, the norm invariant, energy 1/d, every flag in config.
    p = run(TINY + ["--json", path("ok.json")])
    check(p.returncode == 0, "tiny run failed", p)
    check("steps/s" in p.stdout and "energy" in p.stdout, "summary lines missing", p)
    if os.path.exists(path("ok.json")):
        validate(path("ok.json"))
        doc = load(path("ok.json"))
        check(doc["status"] == "success" and doc["benchmark"] == "qca", "status/benchmark wrong")
        check(doc["metrics"]["throughput"]["unit"] == "steps/s", "throughput unit is not steps/s")
        check(doc["metrics"]["latency_ms"]["count"] == 3, "latency count is not --steps")
        q = doc["quality"]
        check(q["max_norm_error"] <= 1e-6, f"a cell's norm is off by {q['max_norm_error']}")
        check(abs(q["energy"] - 0.25) <= 1e-6, f"energy {q['energy']} is not 1/d")
        check(q["rel_l2_vs_reference"] is None, "rel_l2_vs_reference without a reference")
        check(q["loss_per_epoch"] is None and q["final_loss"] is None, "a simulation reports a loss")
        for key in ["grid", "d_state", "hidden", "law", "gamma", "steps", "warmup_steps", "init", "seed", "threads",
                    "device", "weights", "initial_state", "save_state", "reference_state", "density_png"]:
            check(key in doc["config"], f"config lacks {key}")

    # 2. --density-png: a 16x16 PNG whose chunks and CRCs are sound; the JSON records it.
    png = path("density.png")
    p = run(TINY + ["--density-png", png, "--density-colormap", "gray", "--json", path("png.json")])
    check(p.returncode == 0 and os.path.exists(png), "--density-png run failed", p)
    if os.path.exists(png):
        chunks = png_chunks(png)
        kinds = [k for k, _ in chunks]
        check(kinds[0] == "IHDR" and kinds[-1] == "IEND" and "IDAT" in kinds, f"PNG chunk order {kinds}")
        width, height, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
        check((width, height, depth, color) == (16, 16, 8, 0), f"IHDR {(width, height, depth, color)}")
        raw = zlib.decompress(b"".join(d for k, d in chunks if k == "IDAT"))
        check(len(raw) == 16 * 17, f"inflated {len(raw)} bytes, expected 16 rows of 1 + 16")
        check(any(k == "tEXt" and d.startswith(b"Title\0") for k, d in chunks), "PNG lacks the Title text")
        doc = load(path("png.json"))
        check(doc["extra"]["density_png"]["path"] == png, "JSON does not record the PNG")
        check(abs(doc["extra"]["density_png"]["max"] - 1) < 1e-5, "density after a step is not ~1 per cell")

    # 3. --save-weights / --save-state, then --weights / --initial-state / --reference-state reproduce the
    #    run exactly (relative L2 0), also from another seed (the files define everything) and 1 thread.
    w, s = path("w.safetensors"), path("s.safetensors")
    p = run(TINY + ["--seed", "7", "--no-small-outc", "--save-weights", w, "--save-state", s, "--threads", "2"])
    check(p.returncode == 0 and os.path.exists(w) and os.path.exists(s), "save-weights/save-state failed", p)
    if os.path.exists(s):
        saved = read_safetensors(s)
        check(sorted(saved) == ["psi", "psi0"], f"state file holds {sorted(saved)}")
        check(len(saved["psi"]) == 16 * 16 * 4 * 2 * 4, "psi has the wrong size")
        check(saved["psi"] != saved["psi0"], "psi did not move")
        r = path("again.json")
        p = run(TINY + ["--seed", "1", "--weights", w, "--initial-state", s, "--reference-state", s, "--threads", "1",
                        "--save-state", path("s1.safetensors"), "--json", r])
        check(p.returncode == 0, "--weights/--initial-state/--reference-state run failed", p)
        if os.path.exists(r):
            validate(r)
            check(load(r)["quality"]["rel_l2_vs_reference"] == 0.0,
                  f"not reproduced: rel L2 {load(r)['quality']['rel_l2_vs_reference']}")
            check(read_safetensors(path("s1.safetensors"))["psi"] == saved["psi"],
                  "psi differs between 2 threads and 1 thread")

    # 4. Weights for another d_state / hidden: the message says which ones the file was made for.
    expect_error(["--grid", "16", "--steps", "1", "--weights", w], "holds a law for --d-state 4 --hidden 16",
                 "shape_mismatch", path("mismatch.json"))
    expect_error(tiny(hidden="8") + ["--weights", w], "--hidden 16")

    # 5. NaN in a state file; a state of another d_state; a file without psi0; a reference of another grid.
    n = 16 * 16 * 4 * 2
    values = [1.0] * n
    values[123] = float("nan")
    write_safetensors(path("nan.safetensors"), {"psi0": ([1, 16, 16, 4, 2], values)})
    expect_error(TINY + ["--initial-state", path("nan.safetensors")], "non-finite", "invalid_argument",
                 path("nan.json"))
    write_safetensors(path("nanref.safetensors"), {"psi": ([1, 16, 16, 4, 2], values)})
    expect_error(TINY + ["--reference-state", path("nanref.safetensors")], "non-finite")
    write_safetensors(path("d8.safetensors"), {"psi0": ([1, 16, 16, 8, 2], [0.25] * (2 * n))})
    expect_error(TINY + ["--initial-state", path("d8.safetensors")], "d_state = 4")
    write_safetensors(path("g8.safetensors"), {"psi": ([1, 8, 8, 4, 2], [0.5] * (n // 4))})
    expect_error(TINY + ["--reference-state", path("g8.safetensors")], "same --grid")
    expect_error(TINY + ["--initial-state", w], "no tensor named 'psi0'")
    expect_error(tiny(grid="32") + ["--initial-state", s], "differs from --grid 32")
    write_safetensors(path("b2.safetensors"), {"psi0": ([2, 16, 16, 4, 2], [0.5] * (2 * n))})
    expect_error(TINY + ["--initial-state", path("b2.safetensors")], "holds a batch of 2")  # was "differs from --grid"
    weights_nan = bytearray(open(w, "rb").read())
    weights_nan[-4:] = struct.pack("<f", float("nan"))  # the last tensor's last element
    open(path("wnan.safetensors"), "wb").write(weights_nan)
    expect_error(TINY + ["--weights", path("wnan.safetensors")], "non-finite")

    # 5b. Size flags are bounded, the bound in the message (--steps 1e12 used to abort in std::bad_alloc
    # with no JSON; --grid 2^32 wrapped the state's element count). Within the bounds, a size no machine
    # can hold (a 2 TiB state) is an out_of_memory report and exit 1.
    expect_error(tiny(steps="1000000000000"), "not in range 1 to 10000000", "invalid_argument", path("huge.json"))
    expect_error(tiny(grid="4294967296"), "not in range 1 to 16384")
    expect_error(tiny(hidden="100000"), "not in range 1 to 4096")
    expect_error(tiny(d_state="4096"), "not in range 1 to 1024")
    expect_error(TINY + ["--seed", "-1"], "must be a decimal integer")
    p = expect_error(["--grid", "16384", "--d-state", "1024", "--steps", "1", "--warmup-steps", "0"],
                     "could not allocate", "out_of_memory", path("oom.json"))
    check(p.returncode == 1, f"a 2 TiB state exited {p.returncode}, expected 1 (an abort is -6)", p)
    with open("/dev/full", "w") as full:
        p = subprocess.run([QCA, *TINY], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    check(p.returncode == 1 and "cannot write the summary to standard output" in p.stderr,
          f"stdout on a full device: exit {p.returncode}, stderr {p.stderr[-300:]!r}")

    # 5c. An output naming an input is refused and the input kept (--density-png over --weights,
    # --save-state over --initial-state used to destroy them).
    before_w, before_s = open(w, "rb").read(), open(s, "rb").read()
    expect_error(TINY + ["--weights", w, "--density-png", w], "refusing to overwrite an input", "invalid_argument",
                 path("same-png.json"))
    expect_error(TINY + ["--initial-state", s, "--save-state", os.path.join(tmp, ".", os.path.basename(s))],
                 "refusing to overwrite an input")
    p = run(TINY + ["--weights", w, "--json", w])
    check(p.returncode != 0 and "refusing to overwrite an input" in p.stderr, "--json over --weights accepted", p)
    check(open(w, "rb").read() == before_w and open(s, "rb").read() == before_s, "an input file was changed")

    # 5d. --gamma inf is refused before anything runs (it used to save a non-finite state first).
    p = run(TINY + ["--gamma", "inf", "--save-state", path("inf.safetensors"), "--json", path("inf.json")])
    check(p.returncode != 0 and "finite" in p.stderr, "--gamma inf not refused", p)
    check(not os.path.exists(path("inf.safetensors")), "--gamma inf wrote a state")
    if check(os.path.exists(path("inf.json")), "--gamma inf: no error report"):
        validate(path("inf.json"))

    expect_error(TINY + ["--save-state", ""], "must not be empty")

    # 6. A grid that is not a multiple of 4.
    expect_error(tiny(grid="18"), "multiple of 4", "invalid_argument", path("grid.json"))

    # 7. --device cuda: an error JSON that lists the available devices (no CUDA here, or no CUDA step).
    e = path("cuda.json")
    p = expect_error(TINY + ["--device", "cuda"], "cuda", None, e)
    if os.path.exists(e):
        doc = load(e)
        check("cpu" in doc["available_devices"], "error JSON lacks available_devices")
        check(doc["error"]["code"] in ("device_unavailable", "unsupported"), f"cuda error code {doc['error']}")

    # 8. Bad flags and files: non-zero exit and a message naming the problem.
    for args, needle in [
        (["--law", "matrix"], "--law"),
        (["--init", "zeros"], "--init"),
        (["--density-colormap", "rainbow"], "--density-colormap"),
        (["--no-such-flag"], "no-such-flag"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--weights", path("missing.safetensors")], "missing.safetensors"),
        (["--initial-state", path("missing.safetensors")], "missing.safetensors"),
        (["--density-png", path("no/such/dir/d.png")], "no/such/dir/d.png"),
    ]:
        expect_error(TINY + args, needle)
    expect_error(tiny(grid="0"), "--grid")
    expect_error(tiny(steps="0"), "--steps")

if failures:
    print("FAILED:\n- " + "\n- ".join(failures))
    sys.exit(1)
print("all bench/qca CLI checks passed")
