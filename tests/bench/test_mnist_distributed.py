#!/usr/bin/env python3
"""bench/mnist data parallel under mpirun (train/distributed.hpp), run by `meson test` (suite 'bench').

usage: test_mnist_distributed.py MNIST_EXE VALIDATE_JSON_PY MPI_BUILT(yes|no) [MPIRUN]

- 2 ranks x per-rank batch 16 follow 1 rank x batch 32: first 10 step losses within 1e-5 relative,
  epoch means within 1e-3; two 2-rank runs are bit-identical; rank 0 alone writes the JSON, which
  validates and carries `distributed`. The same for 3 ranks x 10 (the rank-ordered all-to-all path).
- ZeRO-1 (--zero1) bit-identical to the all-reduce path with 2 and 3 ranks, a world-th of the state;
  its checkpoints (gathered) resume on 1 rank and, bit-identically, on 2 ranks with --zero1.
- Checkpoints: written by 2 ranks, resumed by 1.
- Refusals: a global batch that does not divide among the ranks; ranks started with different flags
  (each mismatching rank names the field); torchrun-style variables without an MPI launcher.
- Faults: a rank killed mid-run -> mpirun exits non-zero naming the rank, within 30 s; a rank that
  hangs (SIGSTOP) -> the other's watchdog (--comm-timeout 3) ends the job with a message.
Without MPI in the build (or no mpirun) only the torchrun refusal runs, then the test exits 77 (SKIP).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

MNIST, VALIDATE, MPI_BUILT = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"
MPIRUN = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
TINY = ["--samples", "1000", "--test-samples", "200", "--epochs", "3", "--warmup-steps", "2", "--quiet"]
failures = []

# Run as root in CI and containers; shared-memory transport without the single-copy (ptrace) path,
# which container seccomp profiles often forbid; more ranks than cores are allowed.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")


def check(cond, what, proc=None):
    if not cond:
        detail = ""
        if proc is not None:
            detail = f"\n  stdout: {proc.stdout[-1200:]}\n  stderr: {proc.stderr[-1200:]}"
        failures.append(what + detail)
    return cond


def mpirun(np_args, timeout=120):
    return subprocess.run([MPIRUN, *np_args], capture_output=True, text=True, timeout=timeout, env=ENV)


def losses(path):
    doc = json.load(open(path))
    return doc, doc["quality"]["loss_per_step"], doc["quality"]["loss_per_epoch"]


def worst_relative(want, got):
    """The largest |want - got| / |want| over the pairs; infinite when the lengths differ."""
    if len(want) != len(got):
        return float("inf")
    return max(abs(a - b) / abs(a) for a, b in zip(want, got))


def follows_one_rank(one, run_a, run_b, label):
    """Two N-rank runs against the 1-rank run with the same global batch: first 10 step losses within 1e-5
    relative, epoch means within 1e-3, and the two N-rank runs bit-identical. Returns their step losses."""
    _, s1, e1 = losses(one)
    _, sa, ea = losses(run_a)
    _, sb, _ = losses(run_b)
    check(len(s1) == len(sa), f"{label}: step counts {len(s1)} (1 rank) and {len(sa)}")
    worst10 = worst_relative(s1[:10], sa[:10])
    check(worst10 <= 1e-5, f"{label}: first 10 step losses differ by {worst10:.3g} relative (limit 1e-5)")
    worst_epoch = worst_relative(e1, ea)
    check(worst_epoch <= 1e-3, f"{label}: epoch mean losses differ by {worst_epoch:.3g} relative (limit 1e-3)")
    check(sa == sb, f"{label}: two runs are not bit-identical")
    return sa


# Always: torchrun-style variables are refused with the way to launch instead.
p = subprocess.run([MNIST, *TINY], capture_output=True, text=True, timeout=60,
                   env=dict(os.environ, WORLD_SIZE="2", RANK="0", LOCAL_RANK="0"))
check(p.returncode != 0 and "mpirun" in p.stderr, "WORLD_SIZE=2 without mpirun was not refused by name", p)

if not MPI_BUILT or not MPIRUN:
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("SKIP: " + ("bench/mnist was built without MPI (meson -Dmpi; Debian libopenmpi-dev)" if not MPI_BUILT
                      else "no mpirun on PATH (Debian openmpi-bin)"))
    sys.exit(77)

with tempfile.TemporaryDirectory() as tmp:
    # 1. 1 rank x 32 against 2 ranks x 16, and 2 ranks twice.
    one, two_a, two_b = (os.path.join(tmp, n) for n in ("one.json", "two_a.json", "two_b.json"))
    p = subprocess.run([MNIST, *TINY, "--threads", "1", "--batch", "32", "--json", one],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "1-rank run failed", p)
    for path in (two_a, two_b):
        p = mpirun(["-np", "2", MNIST, *TINY, "--batch", "32", "--json", path])
        check(p.returncode == 0, "2-rank run failed", p)
        check(p.stdout.count("ferrite bench/mnist") == 1, "more than one rank printed the summary", p)
        check("ranks        2 × batch 16 (global 32)" in p.stdout, "summary lacks the ranks line", p)
    if all(os.path.exists(x) for x in (one, two_a, two_b)):
        v = subprocess.run([sys.executable, VALIDATE, two_a], capture_output=True, text=True)
        check(v.returncode == 0, f"2-rank JSON does not validate: {v.stdout}{v.stderr}")
        s2 = follows_one_rank(one, two_a, two_b, "2 ranks")
        check(len(s2) == 3 * 32, f"2 ranks: {len(s2)} steps, expected 96")
        d = json.load(open(two_a)).get("distributed", {})
        check(d.get("world_size") == 2 and d.get("per_rank_batch") == 16 and d.get("backend") == "mpi"
              and len(d.get("per_rank_step_ms_p50", [])) == 2 and 0 <= d.get("comm_share", -1) <= 1,
              f"distributed section: {d}")
        check(json.load(open(one)).get("distributed") is None, "a 1-rank run has a distributed section")

    # 1a. Three ranks (more than the cores: oversubscribed) take the rank-ordered all-to-all path (two ranks use
    # MPI_Allreduce, whose result is the same for two): 3 x 10 rows follow 1 x 30, and repeat bit for bit.
    # 990 samples divide among 3 ranks (1000 would be padded to 1002, so the last batches would differ).
    tiny990 = [a if a != "1000" else "990" for a in TINY]
    one30, three_a, three_b = (os.path.join(tmp, n) for n in ("one30.json", "three_a.json", "three_b.json"))
    p = subprocess.run([MNIST, *tiny990, "--threads", "1", "--batch", "30", "--json", one30],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "1-rank batch-30 run failed", p)
    for path in (three_a, three_b):
        p = mpirun(["-np", "3", MNIST, *tiny990, "--batch", "30", "--json", path])
        check(p.returncode == 0, "3-rank run failed", p)
    if all(os.path.exists(x) for x in (one30, three_a, three_b)):
        follows_one_rank(one30, three_a, three_b, "3 ranks")

    # 1c. ZeRO-1 (--zero1): the optimizer state sharded across ranks gives the same bits as the all-reduce
    # path, with 2 and with 3 ranks, holding a world-th of the state; refused where it cannot work.
    for world, base, plain, args in ((2, TINY, two_a, ["--batch", "32"]), (3, tiny990, three_a, ["--batch", "30"])):
        z = os.path.join(tmp, f"zero1-{world}.json")
        p = mpirun(["-np", str(world), MNIST, *base, *args, "--zero1", "--json", z])
        if check(p.returncode == 0, f"{world}-rank --zero1 run failed", p) and os.path.exists(plain):
            zd, pd = json.load(open(z)), json.load(open(plain))
            check(zd["quality"]["loss_per_step"] == pd["quality"]["loss_per_step"]
                  and zd["quality"]["test_loss"] == pd["quality"]["test_loss"],
                  f"{world} ranks: --zero1 is not bit-identical to the all-reduce path")
            full, mine = pd["distributed"]["optimizer_state_elements"], zd["distributed"]["optimizer_state_elements"]
            check(zd["distributed"]["zero1"] is True and mine * world <= full + 64 * world and mine < full,
                  f"{world} ranks: rank 0 holds {mine} of {full} state elements")
    for args, needle in ((["--zero1"], "--zero1 needs a data-parallel run"),):
        p = subprocess.run([MNIST, *TINY, *args], capture_output=True, text=True, timeout=60)
        check(p.returncode != 0 and needle in p.stderr, f"{args} without mpirun: not refused with {needle!r}", p)
    # ZeRO-1 checkpoints hold the whole state (gathered from the shards): 2 ranks with --zero1 write one after
    # epoch 2, 1 rank resumes it for epoch 3 and follows the 2-rank run; 2 ranks --zero1 resume it too.
    zck, zres1, zres2 = (os.path.join(tmp, n) for n in ("z.safetensors", "zres1.json", "zres2.json"))
    p = mpirun(["-np", "2", MNIST, *[a if a != "3" else "2" for a in TINY], "--batch", "32", "--zero1", "--checkpoint", zck])
    check(p.returncode == 0 and os.path.exists(zck), "2-rank --zero1 run with --checkpoint failed", p)
    p1 = subprocess.run([MNIST, *TINY, "--threads", "1", "--batch", "32", "--resume", zck, "--json", zres1],
                        capture_output=True, text=True, timeout=120)
    p2 = mpirun(["-np", "2", MNIST, *TINY, "--batch", "32", "--zero1", "--resume", zck, "--json", zres2])
    check(p1.returncode == 0 and p2.returncode == 0, "resuming a --zero1 checkpoint failed", p1 if p1.returncode else p2)
    if p1.returncode == 0 and p2.returncode == 0 and os.path.exists(two_a):
        t3 = json.load(open(two_a))["quality"]["loss_per_step"][64:]
        r1 = json.load(open(zres1))["quality"]["loss_per_step"]
        r2 = json.load(open(zres2))["quality"]["loss_per_step"]
        check(r2 == t3, "2 ranks --zero1 resumed from a --zero1 checkpoint are not bit-identical to the whole run")
        worst = worst_relative(t3, r1) if len(t3) == 32 else float("inf")
        check(worst <= 1e-5, f"a --zero1 checkpoint resumed on 1 rank differs by {worst:.3g} relative")

    # 1b. Checkpoints hold the global state: 2 ranks write one after epoch 2 (rank 0 alone), 1 rank resumes it
    # for epoch 3 and follows the 2-rank run's epoch 3 (the world size changes only the rounding).
    ck, resumed = os.path.join(tmp, "ck.safetensors"), os.path.join(tmp, "resumed.json")
    two_epochs = [a if a != "3" else "2" for a in TINY]  # TINY's "--epochs 3" -> 2
    p = mpirun(["-np", "2", MNIST, *two_epochs, "--batch", "32", "--checkpoint", ck])
    check(p.returncode == 0 and os.path.exists(ck), "2-rank run with --checkpoint failed", p)
    leftovers = [n for n in os.listdir(tmp) if ".tmp." in n]
    check(not leftovers, f"temporary checkpoint files left behind: {leftovers}")
    p = subprocess.run([MNIST, *TINY, "--threads", "1", "--batch", "32", "--resume", ck, "--json", resumed],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "1-rank resume of a 2-rank checkpoint failed", p)
    if p.returncode == 0 and os.path.exists(two_a):
        r3 = json.load(open(resumed))["quality"]["loss_per_step"]
        t3 = json.load(open(two_a))["quality"]["loss_per_step"][64:]
        worst = worst_relative(t3, r3) if len(t3) == 32 else float("inf")
        check(worst <= 1e-5, f"epoch 3 resumed on 1 rank differs from the 2-rank run by {worst:.3g} relative")

    # 2. Refusals: a batch that does not divide, and ranks with different flags (MPMD launch).
    p = mpirun(["-np", "2", MNIST, *TINY, "--batch", "33"])
    check(p.returncode != 0 and "must divide among the 2 ranks" in p.stderr, "--batch 33 on 2 ranks was not refused", p)
    p = mpirun(["-np", "1", MNIST, *TINY, "--batch", "32", ":", "-np", "1", MNIST, *TINY, "--batch", "64"])
    check(p.returncode != 0 and "rank 1 was started with another configuration than rank 0: batch = 64 here, 32 on rank 0"
          in p.stderr, "mismatched --batch was not refused naming the field", p)

    # 3. Faults. A long run; its ranks carry a marker so that this test finds exactly them.
    def start_long(extra):
        marker = uuid.uuid4().hex
        env = dict(ENV, FERRITE_TEST_MARKER=marker)
        proc = subprocess.Popen([MPIRUN, "-x", "FERRITE_TEST_MARKER", "-np", "2", MNIST, "--samples", "1000",
                                 "--epochs", "1000000", "--warmup-steps", "0", "--quiet", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        return proc, marker

    def rank_pid(marker, rank, wait_s=20):
        deadline = time.time() + wait_s
        while time.time() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                except OSError:
                    continue
                if f"FERRITE_TEST_MARKER={marker}".encode() in environ and \
                        f"OMPI_COMM_WORLD_RANK={rank}".encode() in environ:
                    return int(pid)
            time.sleep(0.2)
        return None

    for mode in ("kill", "stop"):
        proc, marker = start_long(["--comm-timeout", "3"])
        pid = rank_pid(marker, 1)
        if not check(pid is not None, f"{mode}: rank 1 of the long run not found"):
            proc.kill()
            continue
        time.sleep(2.0)  # into training
        os.kill(pid, signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
        began = time.time()
        try:
            out, err = proc.communicate(timeout=30)
            took = time.time() - began
            check(proc.returncode != 0, f"{mode}: mpirun exited 0 after rank 1 was lost")
            check(took <= 30, f"{mode}: took {took:.1f} s to end")
            if mode == "kill":
                check("rank 1" in err or "rank 1" in out, f"kill: nothing names the lost rank 1:\n{err[-1500:]}")
            else:
                check("did not complete within 3 s" in err, f"stop: no watchdog message:\n{err[-1500:]}")
        except subprocess.TimeoutExpired:
            check(False, f"{mode}: the job did not end within 30 s after rank 1 was lost")
            proc.kill()
            proc.communicate()
        finally:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

if failures:
    print(f"{len(failures)} failure(s):\n" + "\n".join(failures))
    sys.exit(1)
print("mnist distributed: all checks passed")
