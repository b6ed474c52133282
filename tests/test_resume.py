"A training process killed with SIGKILL in the middle of an epoch resumes and ends exactly like an uninterrupted run."
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
from safetensors.torch import load_file

from kt_nb.engine.ledger import RoleLedger

WORKER = Path(__file__).with_name('resume_worker.py')


def start(out, *args):
    return subprocess.Popen([sys.executable, str(WORKER), str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_at(process, global_step: int) -> int:
    "SIGKILL `process` once it reports `global_step`; returns the last step it reported."
    last = -1
    for line in process.stdout:
        if line.startswith('step '):
            last = int(line.split()[1])
            if last >= global_step:
                os.kill(process.pid, signal.SIGKILL)
                break
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    return last


def finish(process) -> list[int]:
    "Wait for `process` to end well; returns the steps it ran."
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return [int(l.split()[1]) for l in out.splitlines() if l.startswith('step ')]


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    straight = finish(start(tmp_path/'straight'))
    steps_per_epoch = len(straight) // 3
    assert straight == list(range(3 * steps_per_epoch))

    # killed twice, each time in the middle of an epoch and between two checkpoints (every 3 steps)
    killed_at = kill_at(start(tmp_path/'killed'), steps_per_epoch + 4)
    assert killed_at % steps_per_epoch not in (0, steps_per_epoch - 1)
    second = start(tmp_path/'killed', '--resume')
    killed_again = kill_at(second, 2 * steps_per_epoch + 7)
    rest = finish(start(tmp_path/'killed', '--resume'))
    assert rest[0] > killed_again - 3 and rest[-1] == 3 * steps_per_epoch - 1   # resumed from a recent checkpoint, not from scratch

    a, b = tmp_path/'straight', tmp_path/'killed'
    for name in ('tiny0.safetensors', 'tiny1.safetensors'):
        wa, wb = load_file(a/name), load_file(b/name)
        assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa), name
    pd.testing.assert_frame_equal(RoleLedger.read(a/'ledger'), RoleLedger.read(b/'ledger'))
    assert json.loads((a/'history.json').read_text()) == json.loads((b/'history.json').read_text())
    ledger = RoleLedger.read(b/'ledger')
    assert len(ledger) == 3 * 320 and ledger.groupby('epoch')['sample'].nunique().tolist() == [320] * 3
