#!/usr/bin/env python3
"""Builds a throw-away Meson project that takes ferrite as a subproject (subprojects/ferrite -> this
source tree) through `dependency('ferrite', fallback: ...)`, compiles examples/consumer/main.cpp with it
and runs it. Test `subproject-consumer`."""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

MESON_BUILD = """project('ferrite-subproject-consumer', 'cpp', default_options: ['cpp_std=c++20', 'buildtype=release'])
ferrite = dependency('ferrite', fallback: ['ferrite', 'ferrite_dep'],
                     default_options: ['tests=false', 'benchmarks=false', 'cuda=disabled', 'native={native}'])
executable('consumer', '{main}', dependencies: ferrite)
"""


def run(cmd, **kw):
    print("+", " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--native", choices=["true", "false"], default="true")
    args = p.parse_args()
    src = Path(args.source_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="ferrite-subproject-") as tmp:
        proj = Path(tmp) / "consumer"
        (proj / "subprojects").mkdir(parents=True)
        os.symlink(src, proj / "subprojects" / "ferrite")
        (proj / "meson.build").write_text(MESON_BUILD.format(native=args.native, main=src / "examples/consumer/main.cpp"))
        build = proj / "build"
        if run(["meson", "setup", build, proj], capture_output=True, text=True).returncode != 0:
            run(["cat", build / "meson-logs" / "meson-log.txt"])
            print("the consumer did not configure with ferrite as a subproject")
            return 1
        if run(["ninja", "-C", build, "consumer"]).returncode != 0:
            print("the consumer did not build with ferrite as a subproject")
            return 1
        if run([build / "consumer"], cwd=tmp).returncode != 0:
            print("the subproject consumer did not run")
            return 1
    print("ferrite works as a Meson subproject: dependency('ferrite') builds and runs the consumer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
