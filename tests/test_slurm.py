"""A two-point sweep through a real Slurm: `make slurm` starts a single-node cluster where it can (root, apt-get); where
there is none, the test skips and says why."""
import json
import shutil
import subprocess

import pytest

from kt_nb.experiment.launch import read_launch
from kt_nb.experiment.jobs import sweep_status
from kt_nb.experiment.sweeps import sweep

SPEC = {'threads': 1,
        'base': {'dataset': 'digits', 'groups': [['test_resnet:scratch', 'test_efficientnet:scratch']], 'n_train': 128,
                 'n_val': 32, 'n_test': 96, 'img_size': 16, 'stage1_epochs': 1, 'epochs': 1},
        'grid': {'arm': ['bikd', 'control'], 'seed': [0]}, 'launcher': 'slurm', 'slurm': {'time': 30}}


def no_cluster() -> str | None:
    "Why no sweep can go through sbatch here, or None."
    if not shutil.which('sbatch'): return "no sbatch here: `make slurm` starts a single-node cluster as root with apt-get"
    try: states = subprocess.run(['sinfo', '-h', '-o', '%t'], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e: return f"sinfo did not answer: {e}"
    if not set(states.stdout.split()) & {'idle', 'mix', 'alloc', 'comp'}:
        return f"no Slurm node takes jobs (sinfo: {(states.stdout + states.stderr).strip() or 'nothing'})"
    try: import submitit  # noqa: F401
    except ImportError: return "submitit is not installed (pip install 'kt_nb[cluster]')"


@pytest.mark.skipif(no_cluster() is not None, reason=str(no_cluster()))
def test_a_sweep_through_sbatch(tmp_path):
    out = tmp_path/'s'
    table = sweep(SPEC, out, poll=1, progress=False)
    assert table.status.tolist() == ['done', 'done'], table
    status = sweep_status(out)
    assert (status.status == 'done').all() and status.job.str.fullmatch(r'\d+').all(), status
    step = status[status.kind == 'stage 1'].job.item()
    for point in table.point:   # each point's job waited for its stage-1 step's
        job = read_launch(out/point)['job']
        submission = (out/'jobs'/f'{job}_submission.sh').read_text()
        assert f'#SBATCH --dependency=afterok:{step}' in submission, submission
        assert json.loads((out/point/'metrics.json').read_text())['runs']
