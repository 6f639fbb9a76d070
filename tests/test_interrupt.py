"""Ctrl-C during a real sweep on local processes: the printed command finishes
it, the dataset equals an uninterrupted one, and no process is left behind."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from sim.dataset import SWEEP_PENDING, load
from sim.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parent.parent
SAGASIM = str(Path(sys.executable).parent / "sagasim")
SWEEP = ROOT / "sweeps" / "payment-failure.toml"
SEEDS = "1..4"
# Long enough runs (about 15,000 orders, half a second or more each) that the
# sweep cannot finish between two looks of the 10 ms poll below and the
# interrupt: with 20 s runs it sometimes did on a busy machine, and the test
# saw exit 0 instead of 130.
SETTINGS = ["run.duration=300", "run.drain=10"]
#: 5 grid points x 1 protocol x 4 seeds
RUNS = 20


@dataclass
class Stopped:
    """What an interrupted command left: its exit status, output and leftover processes."""

    code: int
    stderr: str
    leftover: list[str]


def session_processes(session: int) -> list[str]:
    """The command lines of the live processes of a session (``/proc/*/stat``, field 6)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError):
            continue  # the process ended while it was read
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(cmdline)
    return found


def wait_for_no_processes(session: int) -> list[str]:
    """Wait (without a time limit of its own: pytest's timeout applies) until the session is empty,
    or give up after a generous while and return what is left."""
    for _ in range(600):
        left = session_processes(session)
        if not left:
            return []
        time.sleep(0.05)
    return session_processes(session)


def interrupt_when(argv: list[str], out: Path, saved: int) -> Stopped:
    """Run ``argv``; when ``saved`` runs are saved in ``out`` (and the sweep has
    started), press Ctrl-C: SIGINT to the whole process group, as a terminal does."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    runs = out / ".runs"
    while proc.poll() is None:
        done = len(list(runs.glob("*.json"))) if runs.is_dir() else 0
        if (out / SWEEP_PENDING).exists() and done >= saved:
            os.killpg(proc.pid, signal.SIGINT)
            break
        time.sleep(0.01)
    else:
        pytest.fail(
            f"the sweep ended (exit {proc.returncode}) before {saved} runs were saved and it could be interrupted"
        )
    _, err = proc.communicate()
    return Stopped(proc.returncode, err, wait_for_no_processes(proc.pid))


def resume_argv(stderr: str) -> list[str]:
    """The command printed after ``finish the sweep with:``, with this environment's sagasim."""
    line = " ".join(stderr.split())
    command = line.split("finish the sweep with: ", 1)[1]
    argv = shlex.split(command)
    assert argv[0] == "sagasim"
    return [SAGASIM, *argv[1:]]


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in frame.columns if c == "wall_time"]).reset_index(drop=True)


def test_a_sweep_interrupted_three_times_resumes_to_the_uninterrupted_dataset(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    argv = [SAGASIM, "sweep", str(SWEEP), "--seeds", SEEDS, "-p", "orchestration", "--out", str(out), "--quiet"]
    for setting in SETTINGS:
        argv += ["--set", setting]
    argv += ["--workers", "2"]

    commands = []
    for saved in (0, 3, 10):  # at the start, early, past the middle
        stopped = interrupt_when(argv, out, saved)
        assert stopped.code == 130, stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert "interrupted: the finished runs are saved in" in stopped.stderr
        assert stopped.leftover == []
        assert (out / SWEEP_PENDING).exists()  # never looks complete
        argv = resume_argv(stopped.stderr)
        commands.append(argv)
    assert commands[0] == commands[1] == commands[2]
    assert "--resume" in argv and "--set" in argv and "--seeds" in argv

    done = subprocess.run(argv, capture_output=True, text=True, start_new_session=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["faults", "summary.parquet", "sweep.json", "transactions"]

    resumed = load(out)
    whole = run_sweep(
        load_sweep(SWEEP, seeds=range(1, 5), protocols=["orchestration"], overrides=SETTINGS),
        tmp_path / "whole",
        workers=1,
    )
    assert len(whole.summary) == RUNS
    pd.testing.assert_frame_equal(comparable(resumed.summary), comparable(whole.summary))
    pd.testing.assert_frame_equal(resumed.transactions, whole.transactions)
    pd.testing.assert_frame_equal(resumed.faults, whole.faults)


# ------------------------------------------------------------------ the local pool on an interrupt


def wait_for_release(name: str) -> str:
    """A run for the pool: ``quick`` returns at once; any other writes its pid,
    waits for a ``release`` file beside it (at most 30 s), then marks itself finished."""
    path = Path(name)
    if path.name == "quick":
        return "quick"
    path.with_suffix(".pid").write_text(str(os.getpid()))
    for _ in range(3000):
        if (path.parent / "release").exists():
            break
        time.sleep(0.01)
    path.with_suffix(".finished").write_text("finished")
    return path.name


def sigint_ignored(_: str) -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_an_interrupt_stops_the_workers_instead_of_waiting_for_their_runs(tmp_path: Path) -> None:
    from sim import executors

    slow = [str(tmp_path / "slow1"), str(tmp_path / "slow2")]
    results = executors.run_local(["quick", *slow], wait_for_release, 2, lambda task, why: why)
    assert next(results) == "quick"
    while not all(Path(s).with_suffix(".pid").exists() for s in slow):
        time.sleep(0.01)  # both slow runs have started
    results.close()  # what an interrupt does to the sweep's loop
    # The runs were stopped, not waited for: neither finished, and their processes are gone.
    assert not any(Path(s).with_suffix(".finished").exists() for s in slow)
    for s in slow:
        pid = int(Path(s).with_suffix(".pid").read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} is still alive")
    (tmp_path / "release").write_text("")


def test_workers_leave_ctrl_c_to_the_main_process() -> None:
    from sim import executors

    assert list(executors.run_local(["a", "b"], sigint_ignored, 2, lambda task, why: why)) == [True, True]


def half_a_result(name: str) -> str:
    """``quick`` returns at once. Any other run's worker starts writing a result and stops halfway: the
    moment a worker is stopped in, on an interrupt, when its run had just
    finished. It writes a message header announcing 1 MB and 10 bytes of it,
    then waits for a ``release`` file beside ``name`` (at most 30 s)."""
    import struct

    path = Path(name)
    if path.name == "quick":
        return "quick"
    frame = sys._getframe()
    while frame.f_code.co_name != "_process_worker":  # the pool's worker loop holds the result pipe
        frame = frame.f_back
    writer = frame.f_locals["result_queue"]._writer
    os.write(writer.fileno(), struct.pack("!i", 1 << 20) + b"x" * 10)
    path.with_suffix(".pid").write_text(str(os.getpid()))
    for _ in range(3000):
        if (path.parent / "release").exists():
            break
        time.sleep(0.01)
    return path.name


def test_a_worker_stopped_halfway_through_its_result_does_not_hold_up_the_exit(tmp_path: Path) -> None:
    import threading
    from concurrent.futures.process import _ExecutorManagerThread  # the pool's thread that reads results

    from sim import executors

    half = str(tmp_path / "half")
    # One worker: "quick" is done and read before the half-written result starts.
    results = executors.run_local(["quick", half], half_a_result, 1, lambda task, why: why)
    assert next(results) == "quick"
    while not Path(half).with_suffix(".pid").exists():
        time.sleep(0.01)  # the half message is in the pipe
    managers = [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread)]
    assert managers, "the pool has a manager thread"
    results.close()  # what an interrupt does to the sweep's loop
    left = [t for t in managers if t.is_alive()]
    (tmp_path / "release").write_text("")
    assert left == [], "the pool's manager thread still waits for the rest of a half-written result"


def test_a_ctrl_c_wrapped_by_a_library_is_still_an_interrupt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sim.sweep
    from sim.cli import caused_by_interrupt

    from conftest import sagasim

    def wrapped(*args: object, **kwargs: object) -> None:
        # What pydantic does with a Ctrl-C inside a serializer.
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ValueError("Error calling function `_dump`: KeyboardInterrupt") from exc

    monkeypatch.setattr(sim.sweep, "run_sweep", wrapped)
    code, _, err = sagasim(capsys, "sweep", SWEEP, "--seeds", "1", "--out", tmp_path / "out", "--quiet")
    assert code == 130
    assert "finish the sweep with: sagasim sweep" in " ".join(err.split())
    assert not caused_by_interrupt(ValueError("plain"))
