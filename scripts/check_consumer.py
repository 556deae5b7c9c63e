#!/usr/bin/env python3
"""Builds examples/consumer with its own Makefile (ferrite by include path, dependencies from
pkg-config) into a temporary directory, runs it, and fails unless both succeed. Test `consumer-makefile`."""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--make", default="make")
    p.add_argument("--consumer-dir", required=True)
    p.add_argument("--include-dir", required=True, help="ferrite's include/ directory")
    p.add_argument("--cxx", default="c++")
    p.add_argument("--native", choices=["true", "false"], default="true",
                   help="false: build without -march=native, like ferrite's -Dnative=false")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="ferrite-consumer-") as out:
        cmd = [args.make, "-C", args.consumer_dir, f"BUILD_DIR={out}",
               f"FERRITE_INCLUDE={Path(args.include_dir).resolve()}", f"CXX={args.cxx}"]
        if args.native == "false":
            cmd.append("CXXFLAGS=-std=c++20 -O2 -Wall -Wextra")
        print(" ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            print("the consumer did not build with its Makefile")
            return 1
        exe = Path(out) / "consumer"
        run = subprocess.run([str(exe)], cwd=out)
        if run.returncode != 0:
            print(f"the consumer exited with {run.returncode}")
            return 1
    print("examples/consumer builds with make + pkg-config and runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
