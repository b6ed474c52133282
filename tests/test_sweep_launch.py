"""Where sweep points run: one per GPU slot, under torchrun, and as jobs (submitit's local executor: real processes).

No GPU is needed: the GPU test gives the sweep two GPU names and checks which `CUDA_VISIBLE_DEVICES` each point's
kernel received (its `metrics.json` records it) and that no two points ran on one GPU at once. The points train on the
CPU, as the spec says."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from kt_nb.cli import main
from kt_nb.data.load import load_dataset
from kt_nb.data.sources import write_image_folder
from kt_nb.experiment import launch
from kt_nb.experiment.launch import read_launch, run_point
from kt_nb.experiment.jobs import sweep_status
from kt_nb.experiment.sweeps import TRAIN_NOTEBOOK, TrainParameters, sweep

KT_NB = Path(sys.executable).with_name('kt-nb')
SMALL = {'threads': 1,
         'base': {'dataset': 'digits', 'groups': [['test_resnet:scratch', 'test_efficientnet:scratch']], 'n_train': 128,
                  'n_val': 32, 'n_test': 96, 'img_size': 16, 'stage1_epochs': 1, 'epochs': 1},
         'grid': {'arm': ['bikd', 'control'], 'seed': [0, 1]}}


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out/'sweep.log').read_text().splitlines()]


def hparams_of(folder: Path) -> dict:
    "A run's hparams as TensorBoard's own reader gives them."
    reader = EventAccumulator(str(folder)); reader.Reload()
    start = HParamsPluginData.FromString(reader.PluginTagToContent('hparams')['_hparams_/session_start_info'])
    return {k: getattr(v, v.WhichOneof('kind')) for k, v in start.session_start_info.hparams.items()}


def test_each_running_point_owns_its_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, 'visible_gpus', lambda: ['0', '1'])   # two GPUs, by name only
    out = tmp_path/'s'   # three points on two GPUs: one waits for a free GPU
    table = sweep({**SMALL, 'grid': {'arm': ['bikd', 'dml', 'control'], 'seed': [0]}}, out, gpus='all', progress=False)
    assert table.status.tolist() == ['done'] * 3
    for point in table.point:   # the kernel saw exactly the GPU its folder records
        given = read_launch(out/point)['gpus']
        seen = json.loads((out/point/'metrics.json').read_text())['machine']['visible_gpus']
        assert len(given) == 1 and seen == given[0], (point, given, seen)
    steps = sorted(p.name for p in (out/'steps').iterdir())   # the stage 1 all three start from
    assert len(steps) == 1 and read_launch(out/'steps'/steps[0])['gpus'] in (['0'], ['1'])
    # no GPU ran two things at once, and both were used
    spans, began = {}, {}
    for e in events(out):
        if e.get('event') == 'start': began[e['point']] = e['time']
        elif e.get('event') in ('done', 'failed'): spans.setdefault(e['gpus'][0], []).append((began[e['point']], e['time']))
    assert sorted(spans) == ['0', '1']
    for gpu, runs in spans.items():
        runs.sort()
        assert all(end <= start for (_, end), (start, _) in zip(runs, runs[1:])), (gpu, runs)
    # each point's settings and metrics as hparams, as TensorBoard's own reader reads them
    hparams = [hparams_of(out/point) for point in table.point]
    assert sorted((h['arm'], h['seed']) for h in hparams) == [('bikd', 0), ('control', 0), ('dml', 0)]
    assert all(h['img_size'] == 16 and h['groups'] == '[["test_resnet:scratch", "test_efficientnet:scratch"]]' for h in hparams)
    # every step ended before any point started
    first_point = min(e['time'] for e in events(out) if e.get('event') == 'start' and not e['point'].startswith('stage1-'))
    assert all(e['time'] <= first_point for e in events(out) if e.get('event') == 'done' and e['point'].startswith('stage1-'))


def test_a_point_on_two_processes_matches_one(tmp_path):
    """The same point with 1 and with 2 torchrun processes (gloo, float64: see test_distributed for why) gives the same
    rows, stage 1 included; rank 0 alone wrote files. The images come from a folder: each sample's crop and flip are
    drawn from its index, so both runs see the same ones (an in-memory set's batch augmentation draws per process)."""
    data = load_dataset('digits', n_val=32)
    folder = write_image_folder({'train': data['train'].subset(range(128)), 'val': data['val'],
                                 'test': data['test'].subset(range(96))}, tmp_path/'digits')
    site = tmp_path/'site'; site.mkdir()
    (site/'sitecustomize.py').write_text('import torch\ntorch.set_default_dtype(torch.float64)\n')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(site), os.environ.get('PYTHONPATH')])),
           'OMP_NUM_THREADS': '1'}
    settings = {'dataset': str(folder), 'groups': [['test_vit:scratch', 'test_efficientnet_gn:scratch']], 'n_train': 128,
                'n_val': 32, 'n_test': 96, 'img_size': 32, 'stage1_epochs': 1, 'epochs': 1, 'batch_size': 32,
                'seeds': 1, 'methods': ['bikd']}
    params = {**asdict(TrainParameters()), 'settings': settings, 'quick': False, 'threads': 1}
    for k in (1, 2):
        folder = tmp_path/f'p{k}'
        status = run_point(TRAIN_NOTEBOOK, {**params, 'out': str(folder)}, folder, env=env, processes=k)
        assert status == 'done', (folder/'papermill.log').read_text()[-3000:]
    one, two = (json.loads((tmp_path/f'p{k}'/'metrics.json').read_text()) for k in (1, 2))
    assert (one['machine']['processes'], two['machine']['processes']) == (1, 2)
    a, b = (pd.DataFrame(m['runs']).drop(columns=['train_s']).sort_values(['method', 'model']) for m in (one, two))
    assert len(a) == 6   # start, control and bikd of two models
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=False, atol=1e-6)
    assert (tmp_path/'p2'/'rank1.ipynb').exists()
    files = lambda k: sorted(str(p.relative_to(tmp_path/f'p{k}')) for p in (tmp_path/f'p{k}').rglob('*') if p.is_file())
    assert set(files(2)) - set(files(1)) == {'rank1.ipynb'}


def _children(pid: int) -> list[int]:
    try: return [int(c) for c in Path(f'/proc/{pid}/task/{pid}/children').read_text().split()]
    except OSError: return []


def _wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline: raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.2)


def test_jobs_are_submitted_once_followed_and_requeued(tmp_path):
    """A sweep as jobs: its stage-1 step, then its two points. The point being trained is preempted (SIGUSR2, as Slurm
    warns a job) and requeued by submitit from its checkpoints; Ctrl-C leaves the jobs running; the sweep run again
    submits nothing twice and follows them to the end; a third run submits nothing."""
    spec = {**SMALL, 'base': {**SMALL['base'], 'epochs': 2}, 'grid': {'arm': ['bikd', 'control'], 'seed': [0]}}
    (tmp_path/'spec.yaml').write_text(yaml.safe_dump(spec))
    out = tmp_path/'s'
    first = subprocess.Popen([KT_NB, 'sweep', tmp_path/'spec.yaml', '--out', out, '--launcher', 'submitit-local'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    submitted = lambda: [e for e in events(out) if e.get('event') == 'submitted'] if (out/'sweep.log').exists() else []
    _wait(lambda: any(not e['point'].startswith('stage1-') for e in submitted()), 240, 'a point submitted')
    point = next(e for e in submitted() if not e['point'].startswith('stage1-'))
    _wait(lambda: (out/point['point']/'papermill.log').exists() and _children(int(point['job'])), 60, 'the point running')
    task = _children(int(point['job']))[0]   # submitit's process for the job, under its local controller
    os.kill(task, signal.SIGUSR2)           # preempted
    first.send_signal(signal.SIGINT)         # Ctrl-C in the submitting terminal
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130 and 'the submitted jobs go on' in err, err
    status = sweep_status(out)
    assert set(status.status[status.run == point['point']]) <= {'running', 'done'}, status
    assert main(['sweep', '--status', str(out)]) in (0, 1)
    table = sweep(tmp_path/'spec.yaml', out, launcher='submitit-local', poll=0.5, progress=False)
    assert table.status.tolist() == ['done', 'done'], table
    once = [e['point'] for e in submitted()]
    assert sorted(once) == sorted(set(once)) and len(once) == 3, once   # the step and two points, each submitted once
    log = ''.join(p.read_text() for p in (out/'jobs').glob(f"{point['job']}_*_log.*"))
    assert 'Requeued job' in log and log.count('Starting with JobEnvironment') == 2, log[-3000:]   # ran twice
    assert json.loads((out/point['point']/'metrics.json').read_text())['runs']
    sweep(tmp_path/'spec.yaml', out, launcher='submitit-local', poll=0.5, progress=False)
    assert len(submitted()) == 3
    assert (sweep_status(out).status == 'done').all()


def _refused(capsys, tmp_path, *args) -> str:
    out = tmp_path/'refused'
    spec = tmp_path/'spec.yaml'
    if not spec.exists(): spec.write_text(yaml.safe_dump(SMALL))
    assert main(['sweep', str(spec), '--out', str(out), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists(), err
    return err


def test_launch_mistakes_are_refused_in_one_line_before_any_point(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(launch, 'visible_gpus', lambda: [])
    assert 'torch sees no GPU on this machine' in _refused(capsys, tmp_path, '--gpus', 'all')
    monkeypatch.setattr(launch, 'visible_gpus', lambda: ['0', '1'])
    assert 'there is no GPU 5; this machine has 2' in _refused(capsys, tmp_path, '--gpus', '0,5')
    assert 'gpus_per_point 3 is more than the 2 GPU(s) given' in _refused(capsys, tmp_path, '--gpus', 'all', '--gpus-per-point', '3')
    assert 'needs GPUs to share' in _refused(capsys, tmp_path, '--gpus-per-point', '2')
    assert 'at most 2 run at once' in _refused(capsys, tmp_path, '--gpus', 'all', '--workers', '3')
    assert '--gpus is for --launcher local' in _refused(capsys, tmp_path, '--gpus', 'all', '--launcher', 'submitit-local')
    (tmp_path/'spec.yaml').write_text(yaml.safe_dump({**SMALL, 'slurm': {'partiton': 'gpu'}}))
    assert "unknown key(s) 'partiton' (did you mean 'partition'?)" in _refused(capsys, tmp_path, '--launcher', 'slurm')
    (tmp_path/'spec.yaml').write_text(yaml.safe_dump(SMALL))
    monkeypatch.setattr(launch.shutil, 'which', lambda name, *a, **k: None)   # no Slurm client here
    assert 'sbatch is not on the PATH' in _refused(capsys, tmp_path, '--launcher', 'slurm')
    monkeypatch.setitem(sys.modules, 'submitit', None)                        # submitit not installed
    assert "needs submitit: pip install 'kt_nb[cluster]'" in _refused(capsys, tmp_path, '--launcher', 'slurm')
