"""Every task's experiment, killed with SIGKILL in the middle of a transfer arm, resumes there and ends as an
uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

WORKER = Path(__file__).with_name('experiment_worker.py')


def start(task, out):
    return subprocess.Popen([sys.executable, str(WORKER), task, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_in_transfer_arm(process) -> tuple[str, int]:
    "SIGKILL `process` in the second epoch of its first transfer arm, between two checkpoints; returns (folder, step)."
    for line in process.stdout:
        folder, _, step, _, total = line.split()
        if '-control-' in folder or folder == 'stage1': continue
        if int(step) >= int(total) // 2 + 1 and int(step) % 2 == 1:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()[-3000:]
    return folder, int(step)


def steps(process) -> list[tuple[str, int]]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return [(l.split()[0], int(l.split()[2])) for l in out.splitlines()]


def rows(out: Path) -> pd.DataFrame:
    "Every row of the experiment, less the seconds each arm took."
    return pd.DataFrame(json.loads((out/'metrics.json').read_text())['runs']).drop(columns=['train_s'], errors='ignore')


@pytest.mark.parametrize('task', ['classification', 'segmentation', 'saliency'])
def test_sigkill_in_a_transfer_arm_then_rerun_equals_uninterrupted(tmp_path, task):
    straight, killed = start(task, tmp_path/'straight'), start(task, tmp_path/'killed')
    folder, at = kill_in_transfer_arm(killed)
    control = next((tmp_path/'killed'/'runs').glob('all-control-seed0'))
    finished = {p: p.stat().st_mtime_ns for p in control.rglob('*') if p.is_file()}
    assert (control/'rows.json').exists() and not (tmp_path/'killed'/'runs'/folder/'rows.json').exists()

    rest = steps(start(task, tmp_path/'killed'))
    assert {f for f, _ in rest} == {folder}   # stage 1 and the control were not trained again
    assert at - 2 <= rest[0][1] <= at         # the arm resumed from its last checkpoint, not from scratch
    assert {p: p.stat().st_mtime_ns for p in control.rglob('*') if p.is_file()} == finished
    steps(straight)
    pd.testing.assert_frame_equal(rows(tmp_path/'killed'), rows(tmp_path/'straight'))
