#!/usr/bin/env python3
"""Header hygiene checks, run by `meson test --suite headers` (tests/headers/meson.build).

  standalone  every public header compiles on its own (and included twice), with the exact flags the
              build gives a ferrite target plus -Werror: no header may lean on an include that
              another header happened to pull in first.
  umbrella    include/ferrite/ferrite.hpp includes every public header (not backend/cuda/impl/*).
  nvcc        a .cu translation unit including the umbrella header compiles under nvcc (host code
              only; DESIGN: public headers compile with g++ alone and under nvcc).
  layering    the one-way layer order (docs/architecture.md): no header includes a header of a
              layer above its own, and nvcc-compiled CUDA code (backend/cuda/impl, src/*.cu)
              includes no CPU library code (backend/cpu, xsimd, TBB).
  macros      no macro leaks from ferrite's headers into a user's code un-prefixed: every macro that
              a ferrite header defines and leaves defined starts with FERRITE_ or FE_ (the umbrella
              header preprocessed with the build's flags, with and without FERRITE_WITH_CUDA, plus
              the CUDA backend's impl/*.cuh headers read as text). Proves first that it catches a
              planted leak.
  compile-time  how long the umbrella header takes to compile (-fsyntax-only and -O2 -c), a report
              for README.md, not a test.

Headers are listed when the test runs (a glob of include/ferrite/**/*.hpp), so new headers are checked
without touching the build files. Compiler and flags come from the build's own introspection data
(<build>/meson-info/intro-targets.json) for an anchor target that depends on ferrite_dep: the same
compiler, -std, warnings, -march and dependency include paths as every other ferrite target.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def target_compile_command(build_dir: Path, target: str, language: str = "cpp"):
    """(compiler argv, flags) that the build uses for `target`'s sources of `language`."""
    intro = build_dir / "meson-info" / "intro-targets.json"
    try:
        targets = json.loads(intro.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"check_headers: cannot read {intro}: {e}")
    for t in targets:
        if t["name"] == target:
            for group in t["target_sources"]:
                if group.get("language") == language:
                    return group["compiler"], group["parameters"]
    sys.exit(f"check_headers: no {language} sources of target '{target}' in {intro}")


def public_headers(include_dir: Path):
    return sorted(p.relative_to(include_dir).as_posix() for p in (include_dir / "ferrite").rglob("*.hpp"))


def cmd_standalone(args) -> int:
    compiler, flags = target_compile_command(Path(args.build_dir), args.target)
    # Diagnostics go to a log, not a terminal; keep them plain.
    # The tree being checked comes first on the include path; -Werror because a header's warnings
    # land in every user's build.
    flags = ([f"-I{Path(args.include_dir).resolve()}"]
             + [f for f in flags if not f.startswith("-fdiagnostics-color")] + ["-Werror"])
    headers = public_headers(Path(args.include_dir))
    if not headers:
        print(f"no headers under {args.include_dir}/ferrite", file=sys.stderr)
        return 1

    def check(header: str):
        # Twice: the second include must be a no-op (#pragma once).
        source = f'#include "{header}"\n#include "{header}"\n'
        proc = subprocess.run(compiler + flags + ["-fsyntax-only", "-x", "c++", "-"], input=source,
                              capture_output=True, text=True, cwd=args.build_dir)
        return header, proc.returncode, proc.stdout + proc.stderr

    failures = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for header, rc, output in pool.map(check, headers):
            if rc == 0:
                print(f"ok    {header}")
            else:
                failures += 1
                print(f"FAIL  {header} (exit {rc})")
                lines = output.splitlines()
                print("\n".join("      " + l for l in lines[:40]))
                if len(lines) > 40:
                    print(f"      ... {len(lines) - 40} more lines")
    print(f"{len(headers) - failures}/{len(headers)} headers compile on their own "
          f"({' '.join(compiler)} {' '.join(flags)} -fsyntax-only)")
    return 1 if failures else 0


INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def cmd_umbrella(args) -> int:
    include_dir = Path(args.include_dir)
    umbrella = include_dir / "ferrite" / "ferrite.hpp"
    try:
        text = umbrella.read_text()
    except OSError as e:
        print(f"cannot read the umbrella header: {e}", file=sys.stderr)
        return 1
    listed = set(INCLUDE_RE.findall(text))
    # impl/ holds the CUDA backend's internals (the one .cu includes them; the tests include the
    # host-compilable plan directly): compiled standalone like every header, but not in the umbrella.
    expected = {h for h in public_headers(include_dir) if "/impl/" not in h} - {"ferrite/ferrite.hpp"}
    missing = sorted(expected - listed)
    stale = sorted(listed - expected)
    for h in missing:
        print(f"missing from ferrite/ferrite.hpp: #include \"{h}\"")
    for h in stale:
        print(f"ferrite/ferrite.hpp includes a header that does not exist: {h}")
    print(f"{len(expected & listed)}/{len(expected)} public headers in the umbrella header")
    return 1 if missing or stale else 0


# The layer order, lowest first. A header may include its own layer and those below it. ops, io and
# data are one layer (beside each other): they all sit on tensor/ and below nn/.
LAYERS = ["core", "backend", "tensor", "ops|io|data", "nn", "optim", "models", "train", "bench"]
# Headers exempt from the layer order (and the .cu units that include one), by name so that nothing
# else can slip in. Empty since the hand-written CUDA QCA stepper went (issue 9: QCA runs on ops/, and
# the CUDA backend's QCA kernels are ordinary families on core/ and backend/); a header that must
# break the order until a migration is done goes here, with the reason and the issue in a comment.
LAYERING_EXCEPTIONS = set()  # of "ferrite/..." header paths
CPU_LIBRARY_RE = re.compile(r'^\s*#\s*include\s*[<"](ferrite/backend/cpu/[^">]+|xsimd/[^">]+|tbb/[^">]+)[">]', re.MULTILINE)


def layer_of(header: str):
    """The layer index of "ferrite/<dir>/..."; None for the umbrella header."""
    parts = header.split("/")
    if len(parts) < 3:
        return None
    for i, names in enumerate(LAYERS):
        if parts[1] in names.split("|"):
            return i
    return -1


def cmd_layering(args) -> int:
    include_dir = Path(args.include_dir)
    problems = []
    files = sorted(include_dir.joinpath("ferrite").rglob("*"))
    checked = 0
    for path in files:
        if path.suffix not in (".hpp", ".cuh"):
            continue
        header = path.relative_to(include_dir).as_posix()
        own = layer_of(header)
        if own is None:
            continue
        if own < 0:
            problems.append(f"{header}: its folder is in no layer (add it to LAYERS in scripts/check_headers.py)")
            continue
        checked += 1
        text = path.read_text()
        if header in LAYERING_EXCEPTIONS:
            continue
        for inc in INCLUDE_RE.findall(text):
            if not inc.startswith("ferrite/"):
                continue
            theirs = layer_of(inc)
            if theirs is None or theirs > own:
                problems.append(f"{header} ({LAYERS[own]}) includes {inc} ({'the umbrella' if theirs is None else LAYERS[theirs]}), "
                                "a layer above its own")
        if path.suffix == ".cuh" or "/backend/cuda/" in header:
            for inc in CPU_LIBRARY_RE.findall(text):
                problems.append(f"{header}: CUDA code includes CPU library code {inc}")
    for cu in sorted(Path(args.src_dir).glob("*.cu")) if args.src_dir else []:
        text = cu.read_text()
        includes = INCLUDE_RE.findall(text)
        if any(i in LAYERING_EXCEPTIONS for i in includes):
            continue
        for inc in includes:
            if inc.startswith("ferrite/") and not inc.startswith(("ferrite/core/", "ferrite/backend/")):
                problems.append(f"{cu.name}: a CUDA unit includes {inc} (only core/ and backend/)")
        for inc in CPU_LIBRARY_RE.findall(text):
            problems.append(f"{cu.name}: a CUDA unit includes CPU library code {inc}")
    for p in problems:
        print(p)
    print(f"{checked} headers checked against the layer order {' -> '.join(LAYERS)}; {len(problems)} problem(s)")
    return 1 if problems else 0


ALLOWED_MACRO_PREFIXES = ("FERRITE_", "FE_")
DEFINE_RE = re.compile(r"^\s*#\s*(define|undef)\s+([A-Za-z_][A-Za-z_0-9]*)")
LINE_MARKER_RE = re.compile(r'^# \d+ "([^"]*)"')


def leaked_macros(preprocessed: str, include_dir: Path):
    """{macro: header} for the macros that a header under include_dir/ferrite defines and leaves
    defined, read from `-E -dD` output (line markers tell which file each #define came from)."""
    root = str((include_dir / "ferrite").resolve()) + os.sep
    current, alive = "", {}
    for line in preprocessed.splitlines():
        marker = LINE_MARKER_RE.match(line)
        if marker:
            current = marker.group(1)
            continue
        d = DEFINE_RE.match(line)
        if not d:
            continue
        kind, name = d.groups()
        if kind == "undef":
            alive.pop(name, None)
        elif os.path.abspath(current).startswith(root):
            alive[name] = os.path.relpath(current, include_dir)
        else:
            alive.pop(name, None)  # (redefined by a library header after ferrite's)
    return {m: h for m, h in alive.items() if not m.startswith(ALLOWED_MACRO_PREFIXES)}


def preprocess_umbrella(compiler, flags, include_dir: Path, extra, cwd):
    source = '#include "ferrite/ferrite.hpp"\n'
    proc = subprocess.run(compiler + [f"-I{include_dir.resolve()}"] + flags + extra + ["-E", "-dD", "-x", "c++", "-"],
                          input=source, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        sys.exit(f"check_headers: preprocessing the umbrella header failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def cmd_macros(args) -> int:
    compiler, flags = target_compile_command(Path(args.build_dir), args.target)
    flags = [f for f in flags if not f.startswith("-fdiagnostics-color")]
    # The detector first: a planted leak must be found, a prefixed macro and an #undef'd one not.
    with tempfile.TemporaryDirectory(prefix="ferrite-macros-") as tmp:
        planted = Path(tmp) / "ferrite"
        planted.mkdir()
        (planted / "ferrite.hpp").write_text("#pragma once\n#define LEAKY_NAME 1\n#define FE_FINE 1\n"
                                             "#define SCRATCH(x) x\n#undef SCRATCH\n")
        found = leaked_macros(preprocess_umbrella(compiler, flags, Path(tmp), [], args.build_dir), Path(tmp))
        if set(found) != {"LEAKY_NAME"}:
            print(f"the macro check does not work: on a planted header it found {sorted(found)}, expected ['LEAKY_NAME']")
            return 1
    include_dir = Path(args.include_dir)
    problems = {}
    for extra in ([], ["-DFERRITE_WITH_CUDA"]):
        for macro, header in leaked_macros(preprocess_umbrella(compiler, flags, include_dir, extra, args.build_dir),
                                           include_dir).items():
            problems[macro] = header
    cuh = sorted(include_dir.joinpath("ferrite").rglob("*.cuh"))
    for path in cuh:  # (only nvcc compiles them: read as text, with a line marker naming the file)
        problems.update(leaked_macros(f'# 1 "{path.resolve()}"\n' + path.read_text(), include_dir))
    for macro, header in sorted(problems.items()):
        print(f"{header} defines {macro} and leaves it defined: prefix it FERRITE_/FE_ or #undef it")
    print(f"macros left defined by the umbrella header (with and without FERRITE_WITH_CUDA) and {len(cuh)} .cuh "
          f"headers: {len(problems)} without the prefixes {', '.join(ALLOWED_MACRO_PREFIXES)}")
    return 1 if problems else 0


def cmd_compile_time(args) -> int:
    compiler, flags = target_compile_command(Path(args.build_dir), args.target)
    flags = [f"-I{Path(args.include_dir).resolve()}"] + [f for f in flags if not f.startswith(("-fdiagnostics-color", "-O", "-fsanitize", "-fno-sanitize"))]
    source = '#include "ferrite/ferrite.hpp"\nint main() { return 0; }\n'
    with tempfile.TemporaryDirectory(prefix="ferrite-ctime-") as tmp:
        src = Path(tmp) / "umbrella.cpp"
        src.write_text(source)
        for label, extra in (("-fsyntax-only", ["-fsyntax-only"]), ("-O2 -c", ["-O2", "-c", "-o", str(Path(tmp) / "u.o")])):
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                proc = subprocess.run(compiler + flags + extra + [str(src)], capture_output=True, text=True, cwd=args.build_dir)
                times.append(time.perf_counter() - t0)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:])
                    return 1
            times.sort()
            print(f"{' '.join(compiler)} {label}: median {times[len(times) // 2]:.2f} s, min {times[0]:.2f} s "
                  f"over {args.reps} runs")
    print("flags: " + " ".join(flags))
    return 0


def nvcc_flags(flags, ccbin):
    """The anchor target's g++ flags, rewritten for nvcc: preprocessor flags pass through, the rest
    (warnings, -march, -O) go to the host compiler with -Xcompiler so both passes see them."""
    out = ["-ccbin", ccbin] if ccbin else []
    host = []
    for f in flags:
        if f.startswith(("-I", "-D", "-U", "-isystem")):
            out.append(f)
        elif f.startswith("-std="):
            continue  # nvcc gets its own -std
        elif f.startswith("-fdiagnostics-color") or f == "-Winvalid-pch" or f.startswith("-Werror"):
            continue  # -Werror on the host pass would also trip on nvcc's generated code
        else:
            host.append(f)
    if host:
        out.append("-Xcompiler=" + ",".join(host))
    return out


def cmd_nvcc(args) -> int:
    _, flags = target_compile_command(Path(args.build_dir), args.target)
    with tempfile.TemporaryDirectory(prefix="ferrite-nvcc-") as tmp:
        obj = os.path.join(tmp, "umbrella.o")
        cmd = ([args.nvcc, "-std=c++20", "-x", "cu", "-c", str(Path(args.source).resolve()), "-o", obj,
                f"-I{Path(args.include_dir).resolve()}"] + nvcc_flags(flags, args.ccbin))
        print(" ".join(cmd), flush=True)
        proc = subprocess.run(cmd, cwd=args.build_dir)
        if proc.returncode != 0:
            print(f"nvcc failed (exit {proc.returncode})")
            return 1
        if not os.path.getsize(obj):
            print("nvcc produced an empty object file")
            return 1
    print("the umbrella header compiles under nvcc")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("standalone", "umbrella", "nvcc", "layering", "macros", "compile-time"):
        p = sub.add_parser(name)
        p.add_argument("--include-dir", required=True, help="the directory holding ferrite/")
        if name == "layering":
            p.add_argument("--src-dir", default="", help="the directory of the CUDA .cu units (src/)")
        if name not in ("umbrella", "layering"):
            p.add_argument("--build-dir", required=True)
            p.add_argument("--target", required=True, help="a build target that depends on ferrite_dep")
        if name == "compile-time":
            p.add_argument("--reps", type=int, default=3)
        if name == "standalone":
            p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
        if name == "nvcc":
            p.add_argument("--nvcc", required=True)
            p.add_argument("--ccbin", default="", help="host compiler for nvcc (default: nvcc's own choice)")
            p.add_argument("source", help="the .cu file to compile")
    args = parser.parse_args()
    return {"standalone": cmd_standalone, "umbrella": cmd_umbrella, "nvcc": cmd_nvcc,
            "layering": cmd_layering, "macros": cmd_macros, "compile-time": cmd_compile_time}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
