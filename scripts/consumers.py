"""What the consumer tests share (scripts/check_install.py, scripts/check_source_consumers.py): building
examples/consumer-meson and examples/consumer-cmake the way a user would, in a temporary directory, and
running the program they build (examples/consumer/main.cpp), whose first line says whether ferrite's
CUDA backend is linked."""
import shlex
import shutil
import subprocess
from pathlib import Path


def run(cmd, **kw):
    print("+", " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw)


def copy_consumer(src: Path, dest: Path, name: str) -> Path:
    """examples/<name> and the program they share (examples/consumer/main.cpp) copied under dest, in
    the same layout: the build files refer to ../consumer/main.cpp."""
    shutil.copytree(src / "examples" / name, dest / "examples" / name)
    (dest / "examples" / "consumer").mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "examples" / "consumer" / "main.cpp", dest / "examples" / "consumer" / "main.cpp")
    return dest / "examples" / name


def run_consumer(exe: Path, cwd: Path, cuda: bool, what: str, failures: list) -> None:
    """Runs the consumer on the CPU (and on cuda:0 where it has the CUDA backend and a GPU is visible);
    its report must say whether the CUDA backend is linked, as asked."""
    got = run([exe], cwd=cwd, capture_output=True, text=True)
    print(got.stdout + got.stderr, end="")
    if got.returncode != 0:
        failures.append(f"{what}: the consumer exited with {got.returncode}")
        return
    want = "CUDA backend linked" if cuda else "CUDA backend not linked"
    if want not in got.stdout:
        failures.append(f"{what}: expected '{want}' in the consumer's output")
        return
    if cuda and " 0 GPU(s) visible" not in got.stdout:
        on_gpu = run([exe, "cuda:0"], cwd=cwd)
        if on_gpu.returncode != 0:
            failures.append(f"{what}: the consumer did not train on cuda:0")


def meson_consumer(proj: Path, build: Path, options: list, env, cuda: bool, what: str, failures: list,
                   configure_only: bool = False) -> None:
    configure = run(["meson", "setup", build, proj, *options], env=env, capture_output=True, text=True)
    if configure.returncode != 0:
        log = build / "meson-logs" / "meson-log.txt"
        failures.append(f"{what}: meson setup failed:\n{configure.stdout[-3000:]}{configure.stderr[-2000:]}"
                        + (f"\n(log: {log.read_text()[-3000:]})" if log.is_file() else ""))
        return
    print(configure.stdout[-1500:], end="")
    if configure_only:
        return
    if run(["ninja", "-C", build, "consumer"], env=env).returncode != 0:
        failures.append(f"{what}: the consumer did not build")
        return
    run_consumer(build / "consumer", build, cuda, what, failures)


def cmake_consumer(cmake: str, proj: Path, build: Path, options: list, cxx: str, native: bool, cuda: bool,
                   what: str, failures: list, configure_only: bool = False) -> None:
    configure = run([cmake, "-S", proj, "-B", build, *options, f"-DCMAKE_CXX_COMPILER={shutil.which(cxx) or cxx}",
                     "-DCMAKE_BUILD_TYPE=Release", f"-DFERRITE_CONSUMER_NATIVE={'ON' if native else 'OFF'}",
                     f"-DFERRITE_CONSUMER_CUDA={'ON' if cuda else 'OFF'}"], capture_output=True, text=True)
    if configure.returncode != 0:
        failures.append(f"{what}: cmake did not configure:\n{configure.stdout[-2000:]}{configure.stderr[-2000:]}")
        return
    if configure_only:
        return
    if run([cmake, "--build", build]).returncode != 0:
        failures.append(f"{what}: the consumer did not build")
        return
    run_consumer(build / "consumer", build, cuda, what, failures)
