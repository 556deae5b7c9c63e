#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/ (committed; re-run to refresh).

usage: make_corpus.py QCA_EXE      (build/bench/qca: writes the QCA law and state seeds)

Small, valid files of each kind plus the known-bad shapes of issue 16 (deep nesting, duplicate keys,
wrapping shapes, truncated and corrupt gzip, a header that promises more than its file holds), so
that a fuzzing session starts from the formats' real structure and the replay in `meson test` covers
every regression. Standard library only.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def safetensors(tensors, metadata=None, header_override=None):
    """tensors: {name: (dtype, shape, raw bytes)}"""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = header_override if header_override is not None else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def mlp_tensors(scale=0.1):
    shapes = {"0.weight": [3, 4], "0.bias": [3], "2.weight": [2, 3], "2.bias": [2]}
    out = {}
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        out[name] = ("F32", shape, f32([scale * (i + 1) for i in range(n)]))
    return out


def safetensors_seeds():
    t = "safetensors"
    write(t, "empty", safetensors({}))
    write(t, "mlp", safetensors(mlp_tensors(), {"format": "pt"}))
    write(t, "dtypes", safetensors({
        "f32": ("F32", [2], f32([1.5, -2.0])),
        "f64": ("F64", [2], struct.pack("<2d", 0.25, 1e300)),
        "f16": ("F16", [2], struct.pack("<2H", 0x3C00, 0x7C00)),
        "bf16": ("BF16", [2], struct.pack("<2H", 0x3F80, 0xFF80)),
        "i32": ("I32", [3], struct.pack("<3i", -1, 0, 7)),
        "i64": ("I64", [1], struct.pack("<q", 1 << 40)),
        "scalar": ("F32", [], f32([3.0])),
        "zero": ("F32", [0, 5], b""),
    }))
    # Issue 16 regressions (each must be a clean refusal): deep nesting, duplicate keys, a shape whose
    # element count wraps 64 bits, offsets past the data, a header length past the file.
    write(t, "deep-nesting", struct.pack("<Q", 4096) + b"[" * 4096)
    write(t, "duplicate-key", safetensors({}, header_override=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                                              b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}') + f32([1]))
    write(t, "wrapping-shape", safetensors({}, header_override=b'{"w":{"dtype":"F32","shape":[4294967296,4294967296],'
                                                               b'"data_offsets":[0,0]}}'))
    write(t, "offsets-past-data", safetensors({}, header_override=b'{"w":{"dtype":"F32","shape":[2],'
                                                                  b'"data_offsets":[0,8]}}') + f32([1]))
    write(t, "header-past-file", struct.pack("<Q", 1 << 40) + b"{}")
    write(t, "unsupported-dtype", safetensors({"b": ("BOOL", [1], b"\x01")}))


def state_seeds(qca):
    t = "state"
    write(t, "mlp", safetensors(mlp_tensors()))
    nan = mlp_tensors()
    nan["2.bias"] = ("F32", [2], f32([0.5, float("nan")]))
    write(t, "mlp-nan", safetensors(nan))
    short = mlp_tensors()
    short["0.weight"] = ("F32", [3, 3], f32([0.1] * 9))
    write(t, "mlp-wrong-shape", safetensors(short))
    with tempfile.TemporaryDirectory() as tmp:
        law, state = os.path.join(tmp, "law"), os.path.join(tmp, "state")
        subprocess.run([qca, "--grid", "4", "--d-state", "2", "--hidden", "4", "--steps", "1", "--warmup-steps", "0",
                        "--save-weights", law, "--save-state", state, "--threads", "1"],
                       check=True, capture_output=True)
        write(t, "qca-law", open(law, "rb").read())
        write(t, "qca-state", open(state, "rb").read())
    write(t, "psi0-wrong-rank", safetensors({"psi0": ("F32", [4, 4, 2, 2], f32([0.5] * 64))}))


def idx_pair(images, labels, max_samples=0):
    return bytes([max_samples]) + struct.pack("<I", len(images)) + images + labels


def idx_images(count, rows, cols, pixels=None):
    body = bytes((k * 37) % 256 for k in range(count * rows * cols)) if pixels is None else pixels
    return struct.pack(">IIII", 0x803, count, rows, cols) + body


def idx_labels(labels, count=None):
    return struct.pack(">II", 0x801, len(labels) if count is None else count) + bytes(labels)


def idx_seeds():
    t = "idx"
    imgs, lbls = idx_images(3, 2, 3), idx_labels([1, 9, 0])
    write(t, "raw", idx_pair(imgs, lbls))
    write(t, "gzip", idx_pair(gzip.compress(imgs, mtime=0), gzip.compress(lbls, mtime=0)))
    write(t, "gzip-prefix", idx_pair(gzip.compress(imgs, mtime=0), gzip.compress(lbls, mtime=0), max_samples=2))
    write(t, "mixed", idx_pair(imgs, gzip.compress(lbls, mtime=0), max_samples=1))
    gz = gzip.compress(imgs, mtime=0)
    write(t, "gzip-truncated", idx_pair(gz[: len(gz) // 2], lbls))
    corrupt = bytearray(gz)
    corrupt[12] ^= 0xFF
    write(t, "gzip-corrupt", idx_pair(bytes(corrupt), lbls))
    # A header that promises more than the file can hold, and a blank set deflate shrinks ~1000:1
    # (4,000 images of 28x28 in ~3 KB), read whole and as a prefix.
    write(t, "promises-too-much", idx_pair(idx_images(1000000, 28, 28, pixels=b"\0" * 64), lbls))
    blank = gzip.compress(idx_images(4000, 28, 28, pixels=bytes(4000 * 784)), 9, mtime=0)
    blank_labels = gzip.compress(idx_labels([0] * 4000), 9, mtime=0)
    write(t, "blank-gzip", idx_pair(blank, blank_labels))
    write(t, "blank-gzip-prefix", idx_pair(blank, blank_labels, max_samples=3))
    write(t, "count-mismatch", idx_pair(imgs, idx_labels([1, 2])))
    write(t, "label-out-of-range", idx_pair(imgs, idx_labels([1, 10, 0])))
    write(t, "trailing-bytes", idx_pair(imgs + b"xx", lbls))
    write(t, "swapped", idx_pair(lbls, imgs))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    safetensors_seeds()
    state_seeds(sys.argv[1])
    idx_seeds()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")
