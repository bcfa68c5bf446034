"""Progress on long work: a rich bar with an estimate in a terminal (a real pseudo-terminal here),
plain periodic lines when the output is a file or a pipe."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from alore_bench.cli.progress import PlainProgress, progress_bar

ROOT = Path(__file__).resolve().parents[2]


def run_args(demo_data: Path, results: Path):
    # A one-epoch run on 1,000 images: long enough for bars and lines, short enough for the fast tier.
    return [sys.executable, "-m", "alore_bench", "run", "--method", "bitfit", "--backbone", "demo_vit",
            "--suite", "demo", "--tasks", "digits", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
            "--data-dir", str(demo_data), "--results-dir", str(results)]


def test_a_terminal_sees_a_bar_with_an_estimate(demo_data, tmp_path):
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    main, child = pty.openpty()
    process = subprocess.Popen(run_args(demo_data, tmp_path / "results"), stdin=child, stdout=child, stderr=child,
                               env=env, cwd=tmp_path, close_fds=True)
    os.close(child)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            process.kill()
            raise AssertionError("no output for 120 s")
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")[-3000:]
    text = output.decode(errors="replace")
    assert "digits s42 train" in text and "━" in text  # rich's bar, drawn on the terminal
    assert "-:--:--" in text or ":" in text.split("digits s42 train", 1)[1][:200]  # the time columns


def test_off_a_terminal_plain_lines_instead_of_a_bar(demo_data, tmp_path):
    env = {**os.environ, "ALORE_BENCH_PROGRESS_SECONDS": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(run_args(demo_data, tmp_path / "results"), capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("digits s42 train")]
    assert lines and all("━" not in line and "\x1b" not in line for line in done.stderr.splitlines())
    assert any("(50%)" in line or "%)" in line for line in lines) and any("elapsed" in line for line in lines)


def test_plain_lines_come_once_per_interval_with_an_estimate():
    now = [0.0]
    stream = io.StringIO()
    progress = PlainProgress(Console(file=stream, width=200), every=10, clock=lambda: now[0])
    with progress:
        task = progress.add_task("bench vit_b16", total=100)
        for _ in range(30):
            now[0] += 1
            progress.advance(task)
    lines = stream.getvalue().splitlines()
    # 30 s of work at one line per 10 s: three lines, each with the share done and the time left.
    assert lines == ["bench vit_b16: 10/100 (10%), 0:10 elapsed, about 1:30 left",
                     "bench vit_b16: 20/100 (20%), 0:20 elapsed, about 1:20 left",
                     "bench vit_b16: 30/100 (30%), 0:30 elapsed, about 1:10 left"]


def test_short_work_off_a_terminal_says_nothing():
    stream = io.StringIO()
    console = Console(file=stream, width=200)
    assert not console.is_terminal
    with progress_bar(console) as progress:
        task = progress.add_task("eval", total=3)
        for _ in range(3):
            progress.advance(task)
    assert stream.getvalue() == ""
