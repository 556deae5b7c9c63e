"""Shared helpers of the PyTorch reference scripts: environment, statistics, the ferrite-bench/1 report."""
import datetime
import json
import os
import platform
import resource
import subprocess
import time

import torch

SCHEMA_ID = "ferrite-bench/1"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def torch_backend_info(device):
    cfg = torch.__config__.show()
    blas = "unknown"
    for line in cfg.splitlines():
        line = line.strip()
        if line.startswith("- BLAS_INFO="):  # not always present
            blas = line.split("=", 1)[1]
    if blas == "unknown":
        if torch.backends.mkldnn.is_available():
            blas = "mkl" if torch.backends.mkl.is_available() else "openblas/onednn"
    info = {
        "blas": blas,
        "mkl": torch.backends.mkl.is_available(),
        "onednn": torch.backends.mkldnn.is_available(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        info["cudnn"] = torch.backends.cudnn.version()
        info["cuda"] = torch.version.cuda
    return info


def compiler_string():
    for line in torch.__config__.show().splitlines():
        line = line.strip()
        if line.startswith("- GCC") or line.startswith("- Clang") or "compiler" in line.lower():
            return f"{line.lstrip('- ').strip()} (torch build); python {platform.python_version()}"
    return f"unknown (python {platform.python_version()})"


def environment():
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "compiler": compiler_string(),
        "flags": "n/a (prebuilt torch wheel)",
        "git_commit": git_commit(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "build_type": "release",
    }


def available_devices():
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return devs


def percentile(sorted_values, q):
    """numpy.percentile's default (linear) method, like ferrite::bench::percentile."""
    n = len(sorted_values)
    h = q / 100.0 * (n - 1)
    lo = int(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def summarize_ms(samples):
    s = sorted(samples)
    n = len(s)
    mean = sum(s) / n
    var = sum((x - mean) ** 2 for x in s) / n
    return {"mean": mean, "p50": percentile(s, 50), "p95": percentile(s, 95), "p99": percentile(s, 99),
            "min": s[0], "max": s[-1], "stddev": var ** 0.5, "count": n}


def median(values):
    return percentile(sorted(values), 50)


def peak_host_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def now():
    return time.perf_counter()


def skeleton(benchmark, device, config):
    return {
        "schema": SCHEMA_ID,
        "benchmark": benchmark,
        "framework": {"name": "pytorch", "version": torch.__version__, "backend": torch_backend_info(device)},
        "status": "success",
        "available_devices": available_devices(),
        "device": None,
        "config": config,
        "metrics": None,
        "quality": None,
        "env": environment(),
        "extra": {},
    }


def write_report(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def fail(json_path, report, message):
    """Writes an error report (status "error", the message) and returns the exit status 1."""
    import sys
    print(f"error: {message}", file=sys.stderr)
    report["status"] = "error"
    report["message"] = message
    report["metrics"] = None
    report["quality"] = None
    if report.get("device") is None:
        wanted = str(report.get("config", {}).get("device", "cpu"))
        report["device"] = {"type": "cuda" if wanted.startswith("cuda") else "cpu", "name": "unavailable",
                            "threads": torch.get_num_threads()}
    if json_path:
        write_report(json_path, report)
    return 1
