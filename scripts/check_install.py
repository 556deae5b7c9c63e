#!/usr/bin/env python3
"""Installs this build into a staging directory (`meson install --destdir`) and builds two consumers
against the staged tree, as a user of the installed package would: examples/consumer/main.cpp as one
file with `pkg-config --cflags --libs ferrite`, and examples/consumer-cmake with
`find_package(ferrite CONFIG)`. Each must build and run. Test `install-consumers`."""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def run(cmd, **kw):
    print("+", " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw)


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

    with tempfile.TemporaryDirectory(prefix="ferrite-install-") as tmp:
        destdir = Path(tmp) / "stage"
        if run(["meson", "install", "-C", args.build_dir, "--no-rebuild", "--destdir", destdir],
               capture_output=True, text=True).returncode != 0:
            print("meson install --destdir failed")
            return 1
        prefix = destdir / options["prefix"].lstrip("/")
        header = prefix / options["includedir"] / "ferrite" / "ferrite.hpp"
        if not header.is_file():
            print(f"the umbrella header is not installed at {header}")
            return 1
        native = ["-march=native"] if args.native == "true" else []

        # 1. pkg-config: the version, and flags that compile and link a one-file program.
        env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / options["libdir"] / "pkgconfig"))
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
            exe = Path(tmp) / "consumer-pkgconfig"
            build = run([args.cxx, "-std=c++20", "-O2", *native, src / "examples/consumer/main.cpp", "-o", exe,
                         *shlex.split(flags.stdout)])
            if build.returncode != 0:
                failures.append("the one-file consumer did not compile with pkg-config's flags")
            elif run([exe], cwd=tmp).returncode != 0:
                failures.append("the pkg-config consumer did not run")

        # 2. CMake: find_package(ferrite 0.1 CONFIG REQUIRED) -> ferrite::ferrite.
        cmake = shutil.which("cmake")
        if not cmake:
            failures.append("cmake is not installed (apt-get install cmake): the CMake package is untested")
        else:
            cbuild = Path(tmp) / "consumer-cmake"
            configure = run([cmake, "-S", src / "examples/consumer-cmake", "-B", cbuild, f"-DCMAKE_PREFIX_PATH={prefix}",
                             f"-DCMAKE_CXX_COMPILER={shutil.which(args.cxx) or args.cxx}", "-DCMAKE_BUILD_TYPE=Release",
                             f"-DFERRITE_CONSUMER_NATIVE={'ON' if native else 'OFF'}"], capture_output=True, text=True)
            if configure.returncode != 0:
                failures.append("the CMake consumer did not configure:\n" + configure.stdout[-2000:] + configure.stderr[-2000:])
            elif run([cmake, "--build", cbuild]).returncode != 0:
                failures.append("the CMake consumer did not build")
            elif run([cbuild / "consumer"], cwd=tmp).returncode != 0:
                failures.append("the CMake consumer did not run")
            # A version this package cannot satisfy is refused (the version file works).
            probe = Path(tmp) / "probe"
            probe.mkdir()
            (probe / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.20)\nproject(p NONE)\n"
                                                  "find_package(ferrite 99.0 CONFIG REQUIRED)\n")
            too_new = run([cmake, "-S", probe, "-B", probe / "b", f"-DCMAKE_PREFIX_PATH={prefix}"],
                          capture_output=True, text=True)
            if too_new.returncode == 0:
                failures.append("find_package(ferrite 99.0) succeeded against version " + version)

    if failures:
        print("FAILED:\n- " + "\n- ".join(failures))
        return 1
    print(f"ferrite {version} installs (headers, ferrite.pc, CMake package) and both consumers build and run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
