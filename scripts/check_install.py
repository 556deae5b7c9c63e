#!/usr/bin/env python3
"""Installs this build into a staging directory (`meson install --destdir`) and builds the consumers
against the staged tree, as a user of the installed package would: examples/consumer/main.cpp as one
file with `pkg-config --cflags --libs ferrite`, examples/consumer-meson (dependency('ferrite') through
pkg-config, and dependency('ferrite-cuda') where this build has the CUDA backend) and examples/consumer-cmake (`find_package(ferrite CONFIG)`; where this build has the CUDA
backend, with COMPONENTS cuda and ferrite::cuda). Each must build and run. Test `install-consumers`."""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from consumers import cmake_consumer, copy_consumer, meson_consumer, run, run_consumer  # noqa: E402


def introspect(build, what):
    out = subprocess.run(["meson", "introspect", what, build], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build-dir", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--cxx", default="c++")
    p.add_argument("--native", choices=["true", "false"], default="true")
    args = p.parse_args()
    src = Path(args.source_dir).resolve()
    options = {o["name"]: o["value"] for o in introspect(args.build_dir, "--buildoptions")}
    version = introspect(args.build_dir, "--projectinfo")["version"]
    failures = []

    with tempfile.TemporaryDirectory(prefix="ferrite-install-") as tmp_name:
        tmp = Path(tmp_name)
        destdir = tmp / "stage"
        if run(["meson", "install", "-C", args.build_dir, "--no-rebuild", "--destdir", destdir],
               capture_output=True, text=True).returncode != 0:
            print("meson install --destdir failed")
            return 1
        prefix = destdir / options["prefix"].lstrip("/")
        header = prefix / options["includedir"] / "ferrite" / "ferrite.hpp"
        if not header.is_file():
            print(f"the umbrella header is not installed at {header}")
            return 1
        native = args.native == "true"
        native_flags = ["-march=native"] if native else []
        pc_dir = prefix / options["libdir"] / "pkgconfig"
        cuda = (pc_dir / "ferrite-cuda.pc").is_file()
        print(f"staged in {prefix}; CUDA backend installed: {cuda}")

        # 1. pkg-config: the version, and flags that compile and link a one-file program.
        env = dict(os.environ, PKG_CONFIG_PATH=str(pc_dir))
        got = run(["pkg-config", "--modversion", "ferrite"], env=env, capture_output=True, text=True)
        if got.returncode != 0 or got.stdout.strip() != version:
            failures.append(f"pkg-config --modversion ferrite: {got.stdout.strip()!r} {got.stderr.strip()!r}, "
                            f"expected {version}")
        flags = run(["pkg-config", "--cflags", "--libs", "ferrite"], env=env, capture_output=True, text=True)
        if flags.returncode != 0:
            failures.append(f"pkg-config --cflags --libs ferrite failed: {flags.stderr.strip()}")
        else:
            include_dirs = {Path(f[2:]).resolve() for f in shlex.split(flags.stdout) if f.startswith("-I")}
            if (prefix / options["includedir"]).resolve() not in include_dirs:
                failures.append(f"ferrite.pc does not point into the staged tree: {flags.stdout.strip()}")
            exe = tmp / "consumer-pkgconfig"
            build = run([args.cxx, "-std=c++20", "-O2", *native_flags, src / "examples/consumer/main.cpp", "-o", exe,
                         *shlex.split(flags.stdout)])
            if build.returncode != 0:
                failures.append("the one-file consumer did not compile with pkg-config's flags")
            else:
                run_consumer(exe, tmp, False, "pkg-config consumer", failures)
        if cuda:
            cuda_flags = run(["pkg-config", "--cflags", "--libs", "ferrite-cuda"], env=env, capture_output=True, text=True)
            if cuda_flags.returncode != 0 or "-DFERRITE_WITH_CUDA" not in cuda_flags.stdout \
                    or "-lferrite_cuda" not in cuda_flags.stdout:
                failures.append(f"pkg-config --cflags --libs ferrite-cuda: {cuda_flags.stdout.strip()!r} "
                                f"{cuda_flags.stderr.strip()!r}")
            if not (prefix / options["libdir"] / "libferrite_cuda.a").is_file():
                failures.append("ferrite-cuda.pc is installed but libferrite_cuda.a is not")

        # 2. Meson: dependency('ferrite') [and dependency('ferrite-cuda')] from the staged .pc files (the
        #    copy has no subprojects/, so nothing else can be found).
        proj = copy_consumer(src, tmp / "meson-src", "consumer-meson")
        meson_consumer(proj, tmp / "consumer-meson", [f"-Dnative={args.native}", f"-Dcuda={str(cuda).lower()}"],
                       dict(env, CXX=args.cxx), cuda, "Meson consumer (installed)", failures)

        # 3. CMake: find_package(ferrite 0.1 CONFIG REQUIRED [COMPONENTS cuda]) -> ferrite::ferrite [ferrite::cuda].
        cmake = shutil.which("cmake")
        if not cmake:
            failures.append("cmake is not installed (apt-get install cmake): the CMake package is untested")
        else:
            cmake_consumer(cmake, src / "examples/consumer-cmake", tmp / "consumer-cmake", [f"-DCMAKE_PREFIX_PATH={prefix}"],
                           args.cxx, native, cuda, "CMake consumer (installed)", failures)
            # What this package cannot give is refused: a version too new, an unknown component, and
            # component cuda where the CUDA backend was not built.
            probes = {"99.0": "find_package(ferrite 99.0 CONFIG REQUIRED)",
                      "unknown component": "find_package(ferrite CONFIG REQUIRED COMPONENTS nosuch)"}
            if not cuda:
                probes["component cuda without the CUDA backend"] = "find_package(ferrite CONFIG REQUIRED COMPONENTS cuda)"
            for i, (name, call) in enumerate(probes.items()):
                probe = tmp / f"probe{i}"
                probe.mkdir()
                (probe / "CMakeLists.txt").write_text(f"cmake_minimum_required(VERSION 3.20)\nproject(p NONE)\n{call}\n")
                refused = run([cmake, "-S", probe, "-B", probe / "b", f"-DCMAKE_PREFIX_PATH={prefix}"],
                              capture_output=True, text=True)
                if refused.returncode == 0:
                    failures.append(f"{call} succeeded against version {version}")
                elif "ferrite" not in refused.stderr:
                    failures.append(f"{call} failed without naming ferrite: {refused.stderr[-1000:]}")

    if failures:
        print("FAILED:\n- " + "\n- ".join(failures))
        return 1
    print(f"ferrite {version} installs (headers, ferrite.pc, CMake package{', the CUDA backend' if cuda else ''}) "
          "and the pkg-config, Meson and CMake consumers build and run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
