"Sweeps through the real `papermill` command: a 2 x 2 grid on the CPU, killed halfway and resumed; bad parameters."
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRAIN = ROOT/'kt_nb'/'notebooks'/'train.ipynb'

# sweeps/tiny.yaml with less data: two pairs of tiny models from scratch x (the paper's method, control) x two seeds
SPEC = """
threads: 1
base: {dataset: digits, n_train: 128, n_val: 64, n_test: 128, img_size: 16, stage1_epochs: 1, epochs: 1}
grid:
  groups: [[[test_byobnet:scratch, test_vit:scratch]], [[test_resnet:scratch, test_efficientnet:scratch]]]
  arm: ['bikd:gt_confidence', control]
  seed: [0]
"""
TINY_SETTINGS = {'dataset': 'digits', 'groups': [['test_resnet:scratch', 'test_efficientnet:scratch']], 'n_train': 64,
                 'n_val': 32, 'n_test': 64, 'img_size': 16, 'stage1_epochs': 1, 'epochs': 1, 'methods': ['bikd']}
TINY = json.dumps(TINY_SETTINGS)   # JSON is YAML


def env():
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}


def sessions(out: Path) -> list[list[dict]]:
    "The events of `sweep.log`, split into the sessions (one per `kt-nb sweep` call) that wrote them."
    found = []
    for line in (out/'sweep.log').read_text().splitlines():
        event = json.loads(line)
        if event['event'] == 'sweep': found.append([])
        found[-1].append(event)
    return found


def longest(*outputs: str) -> int:
    return max(len(line) for text in outputs for line in text.splitlines())


def finished(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob('*/metrics.json')}


def test_sweep_killed_halfway_resumes_only_the_rest(tmp_path):
    spec, out = tmp_path/'tiny.yaml', tmp_path/'sweep'
    spec.write_text(SPEC)
    cmd = [str(BIN/'kt-nb'), 'sweep', str(spec), '--workers', '2', '--out', str(out)]
    first = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(finished(out)) < 2 and first.poll() is None and time.time() < deadline: time.sleep(0.2)
    assert first.poll() is None, f"the sweep ended before it could be killed: {first.stderr.read().decode()[-2000:]}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    first_log = first.stderr.read().decode()
    before = finished(out)
    assert 2 <= len(before) < 4, before
    time.sleep(3)   # the points in flight died with the sweep: nothing finishes on its own afterwards
    assert finished(out) == before

    second = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert '4 of 4 points done, 0 failed' in second.stdout
    assert ' failed, ' not in second.stderr   # a point of one arm, without its control, ran its notebook to the end
    first_session, second_session = sessions(out)
    skipped = {e['point'] for e in second_session if e['event'] == 'skip'}
    rerun = {e['point'] for e in second_session if e['event'] == 'start'}
    points = [p['name'] for p in json.loads((out/'points.json').read_text())]
    assert skipped == set(before) and rerun == set(points) - set(before) and len(points) == 4
    assert {k: v for k, v in finished(out).items() if k in before} == before   # finished points were not touched

    table = pd.read_csv(out/'results.csv')
    parquet = pd.read_parquet(out/'results.parquet')
    assert list(parquet.columns) == list(table.columns) and parquet.point.tolist() == table.point.tolist()
    assert table.point.tolist() == points and (table.status == 'done').all()
    assert sorted(table.arm.unique()) == ['bikd:gt_confidence', 'control'] and sorted(table.seed.unique()) == [0]
    runs = pd.DataFrame(json.loads((out/'summary.json').read_text())['runs'])
    arms = runs[runs.method != 'start']
    assert len(arms) == 2 * 2 * 1 * 2 and arms.acc.between(0, 1).all() and arms.start_acc.between(0, 1).all()   # groups x arms x seeds x models
    assert (arms.better.notna()).all()                                  # every arm paired with its control, sample by sample
    one = out/points[0]
    assert {'notebook.ipynb', 'metrics.json', 'runs', 'starts', 'params.yaml'} <= {p.name for p in one.iterdir()}
    assert 'acc, mean ± sd' in second.stdout and 'bikd:gt_confidence' in second.stdout
    # everything both sessions printed fits 120 columns; the arm table with every column is beside summary.json
    assert longest(first_log, second.stdout, second.stderr) <= 120, (first_log, second.stdout, second.stderr)
    assert f"tables in {out}: results.csv, summary.json, arms.csv" in ' '.join(second.stdout.split())
    arm_table = pd.read_csv(out/'arms.csv')
    assert list(arm_table.columns) == ['setting', 'group', 'model', 'method', 'start', 'acc', '− control', '95 %',
                                       'vs control', 'taught', 'seeds']
    assert len(arm_table) == 2 * 2 * 2   # settings x (control, arm) x models


BAD_PARAMETERS = [
    ("settings: {lr: -0.1}", "parameter 'settings': parameter 'lr': must be positive, got -0.1"),
    ("{hooks: 'kt_nb.videos:saliency_experiment'}", "parameter 'hooks': hooks 'kt_nb.videos:saliency_experiment' do not import"),
    ("settings: {groups: [[resnet10t, efficientnet_b99]]}", "parameter 'groups': timm has no model 'efficientnet_b99'"),
    ("{hooks: 'kt_nb.saliency.experiment:saliency_experiment', settings: {clip_length: 0}}", "parameter 'clip_length': must be >= 1, got 0"),
    ("settings: {epoch: 3}", "unknown setting(s) 'epoch' (did you mean 'epochs'?)"),   # a typo once trained the default epochs
    ("epochs: 3", "unknown parameter(s) 'epochs'"),                                      # a setting belongs in settings
]


@pytest.mark.parametrize('parameters,message', BAD_PARAMETERS)
def test_bad_parameter_is_refused_by_the_notebooks_first_check(parameters, message):
    """What `-y` hands train.ipynb, checked as its first cell checks it (every other kind of mistake:
    nbs/23_experiment_sweeps.ipynb)."""
    import yaml
    from dataclasses import asdict
    from kt_nb.experiment.sweeps import TrainParameters, check_train_params
    with pytest.raises(ValueError) as refusal:
        check_train_params({**asdict(TrainParameters()), **yaml.safe_load(parameters)})
    assert message in str(refusal.value), str(refusal.value)


@pytest.mark.parametrize('parameters,message', BAD_PARAMETERS[:2])   # a setting's check and the hooks' import
def test_bad_parameter_fails_before_work(tmp_path, parameters, message):
    "Through papermill, as a user runs it: the first cell's refusal reaches them, and nothing is loaded, trained or written."
    run = tmp_path/'run'
    result = subprocess.run([str(BIN/'papermill'), str(TRAIN), str(tmp_path/'out.ipynb'), '-y', parameters, '-p', 'out', str(run),
                             '--no-progress-bar'], env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout, (result.stderr + result.stdout)[-3000:]
    assert not run.exists()   # nothing was loaded, trained or written


def test_bad_sweep_point_stops_before_any_point_runs(tmp_path):
    spec = tmp_path/'bad.yaml'
    spec.write_text("grid:\n  epochs: [1, 2]\n  arm: ['bikd:gt_confidence', 'bikd:loudest']\n")
    result = subprocess.run([str(BIN/'kt-nb'), 'sweep', str(spec), '--out', str(tmp_path/'s')], env=env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "parameter 'methods': unknown role rule 'loudest'" in result.stderr, result.stderr
    assert not (tmp_path/'s').exists()


def test_help_notebook_lists_every_parameter_with_a_description():
    from kt_nb.experiment.settings import settings_of
    from kt_nb.experiment.sweeps import TrainParameters
    result = subprocess.run([str(BIN/'papermill'), '--help-notebook', str(TRAIN)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in settings_of(TrainParameters):
        at = next(i for i, l in enumerate(lines) if l.strip().startswith(f'{name}:'))
        described = lines[at].split(')', 1)[-1].strip() or lines[at + 1].strip()
        assert described and not described.endswith(':'), (name, lines[at:at + 2])


@pytest.mark.parametrize('notebook', ['train.ipynb', 'report.ipynb'])
def test_parameters_cell_survives_nbdev_clean(tmp_path, notebook):
    "`make check-sync` runs nbdev-clean on these notebooks: the cell papermill fills must keep its tag."
    copy = tmp_path/notebook
    copy.write_text((ROOT/'kt_nb'/'notebooks'/notebook).read_text())
    subprocess.run([str(BIN/'nbdev-clean'), '--fname', str(copy)], check=True, cwd=ROOT, timeout=120)
    tagged = [c for c in json.loads(copy.read_text())['cells'] if 'parameters' in c['metadata'].get('tags', [])]
    assert len(tagged) == 1


def test_interrupted_sweep_keeps_what_finished_and_continues(tmp_path):
    "SIGINT (or SIGTERM) stops the queue, lets the running point end, writes the table of what finished and exits 130."
    spec, out = tmp_path/'slow.yaml', tmp_path/'sweep'
    spec.write_text(f"base: {TINY}\ngrid:\n  seed: [0, 1, 2]\n")
    cmd = [str(BIN/'kt-nb'), 'sweep', str(spec), '--out', str(out)]
    first = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(out.glob('*/metrics.json')) and first.poll() is None and time.time() < deadline: time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 130 and 'interrupted' in stderr, stderr[-2000:]
    table = pd.read_csv(out/'results.csv')
    done = table.point[table.status == 'done'].tolist()
    assert 1 <= len(done) < 3, table.status.tolist()
    second = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and '3 of 3 points done' in second.stdout, second.stderr[-2000:]
    assert 'point 1/' in second.stderr   # one plain line per point off a terminal
    # another spec into the same folder: refused before any work, and no byte of the sweep changes
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob('*') if p.is_file()}
    spec.write_text(f"base: {TINY}\ngrid:\n  seed: [7, 8]\n")
    third = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
    assert third.returncode == 1 and 'holds the sweep of another spec (grid seed: [0, 1, 2] -> [7, 8])' in third.stderr, \
        third.stderr
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob('*') if p.is_file()} == before


def test_training_notebook_refuses_another_runs_folder(tmp_path):
    "The run folder records its parameters: the same run again continues, another run into it is refused and changes no byte."
    run = tmp_path/'run'
    settings = lambda n_test: json.dumps({'settings': {**TINY_SETTINGS, 'n_test': n_test, 'methods': ['bikd']}})
    papermill = lambda out, n_test: subprocess.run([str(BIN/'papermill'), str(TRAIN), str(tmp_path/out), '-p', 'out', str(run),
                                                    '-y', settings(n_test), '--no-progress-bar'], env=env(), capture_output=True, text=True, timeout=300)
    first = papermill('first.ipynb', 64)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob('*') if p.is_file()}
    other = papermill('other.ipynb', 32)
    assert other.returncode != 0
    assert "holds another run; differences (there -> now): n_test: 64 -> 32." in other.stdout + other.stderr
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob('*') if p.is_file()} == before


def test_report_with_nothing_finished_says_so(tmp_path):
    "Every point stopped by its timeout: the failures are listed, the report is skipped in one line, the exit code is 1."
    spec = tmp_path/'spec.yaml'
    spec.write_text(f"base: {TINY}\ngrid:\n  seed: [0, 1]\n")
    result = subprocess.run([str(BIN/'kt-nb'), 'sweep', str(spec), '--out', str(tmp_path/'s'), '--timeout', '1', '--report'],
                            env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.count('timed out after 1.0 s') == 2 and 'Traceback' not in result.stderr
    assert 'report: not written, no point finished' in result.stdout
    assert '0 of 2 points done, 2 failed' in result.stdout


@pytest.mark.parametrize('task', ['segmentation', 'saliency'])
def test_sweeps_of_every_task_tabulate_through_the_same_code(tmp_path, task):
    "Segmentation: two settings, each a whole experiment over two seeds; saliency: one seed of the whole experiment."
    spec = tmp_path/'spec.yaml'
    spec.write_text({'segmentation': "hooks: kt_nb.segmentation.experiment:segmentation_experiment\n"
                                     "threads: 1\nbase: {n_train: 32, n_test: 16, size: 32, stage1_epochs: 1, epochs: 1, "
                                     "seeds: 2, methods: ['bikd:gt_confidence']}\ngrid:\n  lr: [3.0e-4, 1.0e-3]\n",
                     'saliency': "hooks: kt_nb.saliency.experiment:saliency_experiment\n"
                                 "threads: 1\nbase: {n_train_videos: 4, n_test_videos: 2, frames_per_video: 5, "
                                 "stage1_epochs: 1, epochs: 1}\ngrid:\n  seed: [0]\n"}[task])
    result = subprocess.run([str(BIN/'kt-nb'), 'sweep', str(spec), '--out', str(tmp_path/'s'), '--workers', '2'], env=env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path/'s'/'results.csv')
    assert (table.status == 'done').all() and len(table) == {'segmentation': 2, 'saliency': 1}[task]
    summary = pd.DataFrame(json.loads((tmp_path/'s'/'summary.json').read_text())['summary'])
    metric = {'segmentation': 'miou', 'saliency': 'cc'}[task]
    arms = summary[summary.method != 'control']
    assert len(arms) == 4        # segmentation: 2 models x 2 settings; saliency: 2 models x 2 methods
    assert arms[metric].notna().all() and arms.vs_control.notna().all()       # each paired with the control of its setting and seed
    if task == 'segmentation': assert set(summary.setting) == {'lr=0.0003', 'lr=0.001'} and (arms.seeds == 2).all()
    assert f"{metric}, mean ± sd" in result.stdout and arms.method.iloc[0] in result.stdout
    assert longest(result.stdout, result.stderr) <= 120, (result.stdout, result.stderr)
