#!/usr/bin/env python3
"""Builds the consumer projects against this source tree, as projects that embed ferrite's source do
(test `source-consumers`):
  Meson  examples/consumer-meson with subprojects/ferrite -> this tree (dependency('ferrite') falls
         back to the subproject): configured, built and run; and with a subprojects/ferrite.wrap
         (wrap-git from this repository's committed HEAD, [provide] ferrite = ferrite_dep): configured;
  CMake  examples/consumer-cmake with FetchContent (SOURCE_DIR = this tree): configured, built and run;
         with add_subdirectory: configured (the same target; building it again would prove nothing new).
Nothing is downloaded: the wrap clones the local repository."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from consumers import cmake_consumer, copy_consumer, meson_consumer  # noqa: E402

WRAP = """[wrap-git]
url = {url}
revision = head
depth = 1

[provide]
ferrite = ferrite_dep
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--cxx", default="c++")
    p.add_argument("--native", choices=["true", "false"], default="true")
    args = p.parse_args()
    src = Path(args.source_dir).resolve()
    failures = []
    with tempfile.TemporaryDirectory(prefix="ferrite-source-consumers-") as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ, CXX=args.cxx)
        env.pop("PKG_CONFIG_PATH", None)  # (an installed ferrite must not be what is found)

        # Meson, subprojects/ferrite -> this tree (its working tree, uncommitted changes included).
        proj = copy_consumer(src, tmp / "meson-symlink", "consumer-meson")
        (proj / "subprojects").mkdir()
        (proj / "subprojects" / "ferrite").symlink_to(src)
        meson_consumer(proj, tmp / "build-meson-symlink", [f"-Dnative={args.native}", "--wrap-mode=nodownload"],
                       env, False, "Meson subproject (source tree)", failures)

        # Meson, subprojects/ferrite.wrap: the wrap a consumer commits, here cloning the local repository.
        if subprocess.run(["git", "-C", src, "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
            print(f"skipped the wrap case: {src} is not a git repository")
        else:
            proj = copy_consumer(src, tmp / "meson-wrap", "consumer-meson")
            (proj / "subprojects").mkdir()
            (proj / "subprojects" / "ferrite.wrap").write_text(WRAP.format(url=f"file://{src}"))
            meson_consumer(proj, tmp / "build-meson-wrap", [f"-Dnative={args.native}"], env, False,
                           "Meson subproject (ferrite.wrap)", failures, configure_only=True)
            if not (proj / "subprojects" / "ferrite" / "meson.build").is_file():
                failures.append("Meson subproject (ferrite.wrap): the wrap did not check ferrite out")

        # CMake, FetchContent and add_subdirectory on this tree.
        cmake = shutil.which("cmake")
        if not cmake:
            failures.append("cmake is not installed (apt-get install cmake): CMake on the source tree is untested")
        else:
            native = args.native == "true"
            cmake_consumer(cmake, src / "examples/consumer-cmake", tmp / "build-cmake-fetch",
                           ["-DFERRITE_CONSUMER_FROM=fetchcontent", f"-DFERRITE_SOURCE_DIR={src}"], args.cxx, native,
                           False, "CMake FetchContent (source tree)", failures)
            cmake_consumer(cmake, src / "examples/consumer-cmake", tmp / "build-cmake-subdir",
                           ["-DFERRITE_CONSUMER_FROM=subdirectory", f"-DFERRITE_SOURCE_DIR={src}"], args.cxx, native,
                           False, "CMake add_subdirectory (source tree)", failures, configure_only=True)
    if failures:
        print("FAILED:\n- " + "\n- ".join(failures))
        return 1
    print("ferrite works from its source tree: Meson subproject (directory and wrap), CMake FetchContent and "
          "add_subdirectory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
