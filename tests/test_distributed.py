"Two torchrun processes (gloo, CPU) compute the same transfer as one process with the same global batch."
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from safetensors.torch import load_file

from kt_nb.ledger import RoleLedger
from kt_nb.models import load_state

WORKER = Path(__file__).with_name('distributed_worker.py')
TORCHRUN = Path(sys.executable).with_name('torchrun')


def run(*command):
    result = subprocess.run([*map(str, command)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_match_one(tmp_path):
    run(sys.executable, WORKER, tmp_path/'one')
    run(TORCHRUN, '--standalone', '--nproc_per_node', 2, WORKER, tmp_path/'two')
    for folder, processes in (('one', 1), ('two', 2)):
        _, header = load_state(tmp_path/folder/'checkpoint.safetensors', with_metadata=True)
        assert json.loads(header['kt_nb_checkpoint'])['manifest']['processes'] == processes
    one, two = RoleLedger.read(tmp_path/'one'/'ledger'), RoleLedger.read(tmp_path/'two'/'ledger')
    # roles are identical: same samples, same order, same teacher on every sample of every step
    pd.testing.assert_frame_equal(one[['epoch', 'step', 'sample', 'teacher']], two[['epoch', 'step', 'sample', 'teacher']])
    pd.testing.assert_frame_equal(one, two, check_exact=False, atol=1e-4)
    # weights agree to float rounding (gradients are averaged in another order); only rank 0 wrote files
    for name in ('vit.safetensors', 'effnet.safetensors'):
        a, b = load_file(tmp_path/'one'/name), load_file(tmp_path/'two'/name)
        worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        assert worst < 1e-4, (name, worst)
    h1, h2 = (pd.DataFrame(json.loads((tmp_path/d/'history.json').read_text())) for d in ('one', 'two'))
    pd.testing.assert_frame_equal(h1, h2, check_exact=False, atol=1e-4)
    assert sorted(p.name for p in (tmp_path/'two').iterdir()) == sorted(p.name for p in (tmp_path/'one').iterdir())
