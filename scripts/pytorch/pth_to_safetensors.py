#!/usr/bin/env python3
"""Converts a PyTorch checkpoint of the QCA law (Aetheria's UNet / UNetUnitary, shared/specs/qca-step.md)
into the safetensors file that bench/qca --weights and models::QcaUnet::load read.

usage: pth_to_safetensors.py CHECKPOINT.pth OUT.safetensors [--d-state D] [--hidden H]
                             [--dtype f32|f16|bf16|keep] [--key NAME] [--drop-unexpected] [--unsafe-load]

Accepted checkpoints: a dict with the state_dict under 'model_state_dict' (their trainer's) or
'state_dict' (or --key NAME), or a bare state_dict. Names lose every '_orig_mod.' component (torch.compile's
wrapper) and are then checked against the names and shapes the law has for the given --d-state / --hidden
(default: inferred from inc.conv_block.0.weight, [hidden, 2*d_state, 3, 3]): missing, unexpected and
mis-shaped tensors are all reported by name, and nothing is written unless every one matches
(--drop-unexpected leaves out unexpected names instead of failing). Values are stored as f32 by default.

The checkpoint is read with torch.load(weights_only=True), which refuses arbitrary pickled objects;
--unsafe-load lifts that (only for checkpoints you trust: unpickling can run code).
Exit status: 0 written; 1 the checkpoint does not hold a matching law; 2 unreadable input, bad usage or
unwritable output. The output is written atomically (temporary file, then rename), byte for byte the same
for the same input (metadata sorted).
"""
import argparse
import json
import os
import sys

COMPILE_PREFIX = "_orig_mod"
STATE_DICT_KEYS = ("model_state_dict", "state_dict")
DTYPES = ("f32", "f16", "bf16", "keep")


class ConversionError(Exception):
    """A problem with the checkpoint's content (exit status 1)."""


class InputError(Exception):
    """An unreadable checkpoint, bad usage or an unwritable output (exit status 2)."""


def conv_block_shapes(prefix, cin, cout):
    return {f"{prefix}conv_block.0.weight": (cout, cin, 3, 3), f"{prefix}conv_block.1.weight": (cout,),
            f"{prefix}conv_block.1.bias": (cout,), f"{prefix}conv_block.3.weight": (cout, cout, 3, 3),
            f"{prefix}conv_block.4.weight": (cout,), f"{prefix}conv_block.4.bias": (cout,)}


def expected_shapes(d_state, hidden):
    """{name: shape} of the law's state_dict (the spec's names; models::QcaUnet::parameters())."""
    c, h = 2 * d_state, hidden
    s = {}
    s.update(conv_block_shapes("inc.", c, h))
    s.update(conv_block_shapes("down1.1.", h, 2 * h))
    s.update(conv_block_shapes("down2.1.", 2 * h, 4 * h))
    s.update(conv_block_shapes("bot.", 4 * h, 8 * h))
    s.update({"up1.weight": (8 * h, 4 * h, 2, 2), "up1.bias": (4 * h,)})
    s.update(conv_block_shapes("conv_up1.", 6 * h, 4 * h))
    s.update({"up2.weight": (4 * h, 2 * h, 2, 2), "up2.bias": (2 * h,)})
    s.update(conv_block_shapes("conv_up2.", 3 * h, h))
    s.update({"outc.weight": (c, h, 1, 1), "outc.bias": (c,)})
    return s


def is_tensor(v):
    import torch
    return isinstance(v, torch.Tensor)


def describe(v):
    return f"tensor {list(v.shape)} {v.dtype}" if is_tensor(v) else type(v).__name__


def load_checkpoint(path, unsafe=False):
    import pickle
    import torch
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise InputError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise InputError(f"{path}: cannot read it: {e.strerror or e}") from e
    # torch.save writes a zip archive (PK..) since 1.6, a raw pickle (0x80 = PROTO opcode) before.
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise InputError(f"{path}: not a PyTorch checkpoint (neither the zip archive nor the pickle torch.save "
                         f"writes; it starts with {magic!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe)
    except pickle.UnpicklingError as e:
        if unsafe:
            raise InputError(f"{path}: cannot unpickle it: {e}") from e
        raise InputError(f"{path}: torch.load(weights_only=True) refused it ({str(e).splitlines()[0]}); if you trust "
                         "the file, rerun with --unsafe-load") from e
    except Exception as e:  # noqa: BLE001 — zip errors, truncated files, a text file, ...
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e


def extract_state_dict(obj, source, key=None):
    """(state_dict, where): the dict of tensors inside a checkpoint object, and which key held it."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict) and not isinstance(obj, dict):  # a pickled nn.Module
        return dict(obj.state_dict()), "the pickled module's state_dict()"
    if not isinstance(obj, dict):
        raise ConversionError(f"{source}: the checkpoint is a {type(obj).__name__}, not a dict (expected a dict with "
                              f"'model_state_dict' or 'state_dict', or a state_dict)")
    keys = (key,) if key else STATE_DICT_KEYS
    if key and key not in obj:
        raise ConversionError(f"{source}: no key {key!r} (keys: {', '.join(map(repr, list(obj)[:12]))})")
    for k in keys:
        if k in obj:
            inner = obj[k]
            if not isinstance(inner, dict):
                raise ConversionError(f"{source}: {k!r} holds a {type(inner).__name__}, not a state_dict")
            sd, where = inner, repr(k)
            break
    else:
        sd, where = obj, "a bare state_dict"
    bad = [f"{name!r} ({describe(v)})" for name, v in sd.items() if not (isinstance(name, str) and is_tensor(v))]
    if bad:
        more = f", ... ({len(bad)} in all)" if len(bad) > 8 else ""
        what = (f"{where} is not a state_dict" if sd is not obj else
                "the checkpoint has no 'model_state_dict' or 'state_dict' key (pick another with --key NAME) and "
                "is not a state_dict itself")
        raise ConversionError(f"{source}: {what}: non-tensor value(s) {', '.join(bad[:8])}{more}")
    if not sd:
        raise ConversionError(f"{source}: {where} is empty")
    return dict(sd), where


def strip_compile_prefix(sd, source):
    """Drops every '_orig_mod' component of the names; two names that then collide are an error."""
    out, stripped = {}, 0
    for name, v in sd.items():
        parts = name.split(".")
        clean = ".".join(p for p in parts if p != COMPILE_PREFIX)
        stripped += clean != name
        if clean in out:
            raise ConversionError(f"{source}: {name!r} and another tensor both become {clean!r} once "
                                  f"'{COMPILE_PREFIX}.' is removed")
        out[clean] = v
    return out, stripped


def infer_dims(sd):
    """(d_state, hidden) from inc.conv_block.0.weight [hidden, 2*d_state, 3, 3], or None."""
    w = sd.get("inc.conv_block.0.weight")
    if w is None or w.dim() != 4 or w.shape[1] % 2:
        return None
    return int(w.shape[1]) // 2, int(w.shape[0])


def check_names(sd, d_state, hidden):
    """(missing, unexpected, misshaped) against the law's names for d_state / hidden."""
    want = expected_shapes(d_state, hidden)
    missing = [n for n in want if n not in sd]
    unexpected = sorted(n for n in sd if n not in want)
    misshaped = [(n, tuple(sd[n].shape), want[n]) for n in want if n in sd and tuple(sd[n].shape) != want[n]]
    return missing, unexpected, misshaped


def problems_text(missing, unexpected, misshaped, limit=12):
    def clip(items):
        return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")
    parts = []
    if missing:
        parts.append(f"missing {clip([repr(n) for n in missing])}")
    if unexpected:
        parts.append(f"unexpected {clip([repr(n) for n in unexpected])}")
    if misshaped:
        parts.append("mis-shaped " + clip([f"{n!r} is {list(got)}, expected {list(want)}" for n, got, want in misshaped]))
    return "; ".join(parts)


def serialize(tensors, metadata):
    """safetensors bytes with the metadata sorted: python safetensors writes __metadata__ in hash order, so the
    same tensors would give different files from run to run (data section unchanged)."""
    import safetensors.torch
    blob = safetensors.torch.save(tensors, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    ordered = {"__metadata__": dict(sorted(header.pop("__metadata__", {}).items()))}
    ordered.update(sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # data starts 8-byte aligned, as safetensors writes it
    return len(text).to_bytes(8, "little") + text + blob[8 + n:]


def write_atomically(path, blob):
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise InputError(f"cannot write {path}: {e.strerror or e}") from e


def convert(src, dst, d_state=None, hidden=None, dtype="f32", key=None, drop_unexpected=False, unsafe=False):
    """Converts src to dst; returns a summary dict. Raises ConversionError / InputError."""
    import torch
    if dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if (d_state is None) != (hidden is None):
        raise InputError("give both --d-state and --hidden, or neither (then both are inferred)")
    if d_state is not None and (d_state <= 0 or hidden <= 0):
        raise InputError(f"--d-state and --hidden must be positive, got {d_state} and {hidden}")
    sd, where = extract_state_dict(load_checkpoint(src, unsafe), src, key)
    sd, stripped = strip_compile_prefix(sd, src)
    inferred = infer_dims(sd)
    if d_state is None:
        if inferred is None:
            raise ConversionError(f"{src}: cannot infer --d-state / --hidden: no 4-D 'inc.conv_block.0.weight' "
                                  f"(names: {', '.join(map(repr, list(sd)[:8]))}{', ...' if len(sd) > 8 else ''}); "
                                  "is this a QCA U-Net checkpoint?")
        d_state, hidden = inferred
    missing, unexpected, misshaped = check_names(sd, d_state, hidden)
    if drop_unexpected:
        dropped, unexpected = unexpected, []
    else:
        dropped = []
    if missing or unexpected or misshaped:
        hint = ""
        if inferred and inferred != (d_state, hidden):
            hint = (f" (its inc.conv_block.0.weight says --d-state {inferred[0]} --hidden {inferred[1]}, "
                    f"not --d-state {d_state} --hidden {hidden})")
        raise ConversionError(f"{src} ({where}) does not hold the QCA law for d_state {d_state}, hidden {hidden}"
                              f"{hint}: {problems_text(missing, unexpected, misshaped)}")
    target = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
    out = {}
    for name in expected_shapes(d_state, hidden):
        t = sd[name].detach()
        if not t.is_floating_point():
            raise ConversionError(f"{src}: {name!r} is {t.dtype}, not floating point")
        if target is not None:
            t = t.to(target)
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise ConversionError(f"{src}: {name!r} holds {int(bad.sum())} non-finite value(s)")
        out[name] = t.contiguous().clone()
    meta = {"converter": "scripts/pytorch/pth_to_safetensors.py", "source": os.path.basename(src),
            "source_key": where, "d_state": str(d_state), "hidden": str(hidden), "torch_version": torch.__version__}
    write_atomically(dst, serialize(out, meta))
    return {"tensors": len(out), "parameters": sum(t.numel() for t in out.values()), "d_state": d_state,
            "hidden": hidden, "where": where, "stripped": stripped, "dropped": dropped,
            "dtype": str(next(iter(out.values())).dtype).replace("torch.", ""), "bytes": os.path.getsize(dst)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--d-state", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--dtype", choices=DTYPES, default="f32")
    ap.add_argument("--key", default=None, help="the checkpoint key that holds the state_dict")
    ap.add_argument("--drop-unexpected", action="store_true")
    ap.add_argument("--unsafe-load", action="store_true")
    a = ap.parse_args(argv)
    try:
        r = convert(a.checkpoint, a.out, a.d_state, a.hidden, a.dtype, a.key, a.drop_unexpected, a.unsafe_load)
    except InputError as e:
        print(f"pth_to_safetensors: error: {e}", file=sys.stderr)
        return 2
    except ConversionError as e:
        print(f"pth_to_safetensors: error: {e}", file=sys.stderr)
        return 1
    if r["dropped"]:
        print(f"pth_to_safetensors: warning: left out {len(r['dropped'])} unexpected tensor(s): "
              f"{', '.join(map(repr, r['dropped']))}", file=sys.stderr)
    print(f"{a.out}: {r['tensors']} tensors, {r['parameters']:,} parameters, d_state {r['d_state']}, hidden "
          f"{r['hidden']}, {r['dtype']}, {r['bytes']:,} bytes (from {r['where']} of {a.checkpoint}"
          f"{', ' + str(r['stripped']) + ' names without _orig_mod.' if r['stripped'] else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
