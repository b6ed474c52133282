"""Hostile sweeps: specs of any size, dry runs, status, edited specs, the slurm section, two controllers, data caps.
Each case is refused before anything is written or submitted, in one line, or says what is true. In-process, on
hand-written sweep folders; one tiny demo (module-scoped) is the only training."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from kt_nb.cli import main
from kt_nb.experiment import jobs, launch, sweeps
from kt_nb.experiment.launch import HOLD, hold_folder, read_hold, record_launch, release_folder, this_process

BASE = {'dataset': 'digits', 'groups': [['test_resnet:scratch', 'test_vit:scratch']], 'img_size': 16,
        'n_train': 64, 'n_val': 16, 'n_test': 32, 'stage1_epochs': 1, 'epochs': 1}
SPEC = {'threads': 1, 'base': BASE, 'grid': {'arm': ['bikd', 'control'], 'seed': [0]}}
ELSEWHERE = 'node-that-is-not-' + socket.gethostname()


@pytest.fixture(autouse=True)
def here(tmp_path, monkeypatch):
    "Each case in its own folder; no point is ever started unless the case says so."
    monkeypatch.chdir(tmp_path)
    def started(*args, **kwargs): raise AssertionError('a point was started')
    monkeypatch.setattr(sweeps, 'run_here', started)
    monkeypatch.setattr(sweeps, 'run_jobs', started)


def listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob('*'))}


def spec_file(folder: Path, spec: dict | str = SPEC, name: str = 'spec.yaml') -> Path:
    (folder/name).write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return folder/name


def kt_nb(capsys, *argv) -> tuple[int, str, str]:
    "`kt-nb ARGV` in this process: exit code, stdout, stderr."
    try: code = main([str(a) for a in argv])
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, folder: Path, *argv, code: int = 1) -> str:
    "`kt-nb ARGV` ends in one line on stderr with `code`, no traceback, and nothing below `folder` changes."
    before = listing(folder)
    got, out, err = kt_nb(capsys, *argv)
    lines = err.rstrip('\n').split('\n')
    assert got == code and len(lines) == 1 and lines[0].startswith('kt-nb sweep: error: '), (got, out, err)
    assert 'Traceback' not in err and listing(folder) == before, err
    return lines[0]


# -- 1. specs of bounded size; every quoted value cut -----------------------------------------------------------------

LAUGHS = ('a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n'
          + ''.join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip('abcdefgh', 'bcdefghi'))
          + 'slurm: {setup: *i}\n')


@pytest.mark.parametrize('dry', [True, False])
def test_a_billion_laughs_is_refused_at_once(capsys, tmp_path, dry):
    assert len(LAUGHS) < 1000
    spec = spec_file(tmp_path, LAUGHS)
    began = time.monotonic()
    said = refused(capsys, tmp_path, 'sweep', spec, '--out', tmp_path/'s', *(['--dry-run'] if dry else []))
    assert 'expands to more than 10,000 values' in said and len(said) < 300, said
    assert time.monotonic() - began < 5


def test_a_spec_over_a_megabyte_is_refused(capsys, tmp_path):
    spec = spec_file(tmp_path, yaml.safe_dump(SPEC) + '# ' + 'x' * 1_000_000 + '\n')
    said = refused(capsys, tmp_path, 'sweep', spec, '--dry-run')
    assert 'bytes, more than the 1,000,000 a spec may hold' in said, said


@pytest.mark.parametrize('spec,message', [
    ({**SPEC, 'slurm': {'setup': 'x' * 100_000}}, "setup takes a list of shell lines, got 'xxx"),
    ({**SPEC, 'slurm': {'partition': ['gpu'] * 5000}}, "partition takes a name, got ['gpu', 'gpu'"),
    ({**SPEC, 'grid': {'lr': ['x' * 100_000]}}, "sweep point {'lr': 'xxx"),
    ({**SPEC, 'grid': 'y' * 100_000}, "the sweep spec's grid: must be a mapping"),
    ({**SPEC, 'launcher': 'z' * 100_000}, "the sweep spec's launcher: unknown value 'zzz"),
    ({**SPEC, 'base': {**BASE, 'epochs': list(range(5000))}}, "parameter 'epochs': must be an integer"),
])
def test_a_huge_value_is_quoted_short(capsys, tmp_path, spec, message):
    said = refused(capsys, tmp_path, 'sweep', spec_file(tmp_path, spec), '--dry-run')
    assert message in said and len(said) <= 360 and '...' in said, said   # cut, however long the value


# -- 2. the dry run checks what the real run checks -------------------------------------------------------------------

@pytest.mark.parametrize('argv,gpus,message', [
    (['--gpus', '0'], [], '--gpus 0: torch sees no GPU on this machine'),
    (['--gpus', 'a,b'], ['0', '1'], "--gpus a,b: takes 'all' or GPU numbers such as 0,1"),
    (['--gpus', '0,0'], ['0', '1'], '--gpus 0,0 names a GPU twice'),
    (['--gpus-per-point', '3'], ['0', '1'], 'gpus_per_point 3 needs GPUs to share'),
    (['--gpus', 'all', '--gpus-per-point', '3'], ['0', '1'], 'gpus_per_point 3 is more than the 2 GPU(s) given'),
    (['--launcher', 'slurm', '--workers', '2'], [], '--workers is for --launcher local'),
    (['--launcher', 'submitit-local', '--timeout', '60'], [], '--timeout is for --launcher local'),
])
def test_the_dry_run_refuses_what_the_real_run_refuses(capsys, tmp_path, monkeypatch, argv, gpus, message):
    monkeypatch.setattr(launch, 'visible_gpus', lambda: gpus)
    spec = spec_file(tmp_path)
    dry = refused(capsys, tmp_path, 'sweep', spec, '--out', tmp_path/'s', '--dry-run', *argv)
    real = refused(capsys, tmp_path, 'sweep', spec, '--out', tmp_path/'s', *argv)
    assert dry == real and message in dry, (dry, real)


def test_a_dry_run_refuses_a_folder_the_real_run_would_refuse(capsys, tmp_path):
    (tmp_path/'s').mkdir(); (tmp_path/'s'/'mine.txt').write_text('the user\'s')
    said = refused(capsys, tmp_path, 'sweep', spec_file(tmp_path), '--out', tmp_path/'s', '--dry-run')
    assert 'holds files but no kt_nb run (mine.txt)' in said, said


# -- 3. --status says what is true ------------------------------------------------------------------------------------

def sweep_folder(tmp_path: Path, spec: dict = SPEC) -> tuple[Path, list[dict]]:
    "A sweep folder as `sweep` writes it before any point runs: run.json, sweep.yaml, points.json."
    plan = sweeps.plan_sweep(spec, tmp_path/'s')
    out, points = plan['out'], plan['points']
    out.mkdir()
    (out/'run.json').write_text(json.dumps({'hooks': plan['spec']['hooks'], 'points': [p['name'] for p in points]}))
    (out/'sweep.yaml').write_text(yaml.safe_dump({**plan['spec'], 'out': str(out)}))
    (out/'points.json').write_text(json.dumps(points, default=str))
    return out, points


def test_status_shows_running_cancelled_failed_and_never_nan(capsys, tmp_path):
    grid = {'arm': ['bikd', 'dml', 'control'], 'seed': [0, 1]}
    out, points = sweep_folder(tmp_path, {**SPEC, 'grid': grid})
    names = [p['name'] for p in points]
    (out/names[0]).mkdir(); (out/names[0]/'metrics.json').write_text('{}')                        # done
    record_launch(out/names[1], launcher='local', gpus=None, processes=1, **this_process())    # its sweep lives
    record_launch(out/names[2], launcher='local', gpus=None, processes=1, **{**this_process(), 'started': '1'})
    launch.fail_point(out/names[3], 'ValueError: the batch is empty')                             # failed
    (out/'jobs').mkdir()   # a job scancel stopped: gone from the queue, CANCELLED in its log
    record_launch(out/names[4], launcher='submitit-local', job='999999996', jobs=str(out/'jobs'))
    (out/'jobs'/'999999996_0_log.err').write_text('slurmstepd: error: *** JOB 999999996 ON n1 CANCELLED AT 10:00 ***\n')
    launch.cancel_point(out/names[5], 'cancelled by --cancel (Ctrl-C)')
    code, said, err = kt_nb(capsys, 'sweep', '--status', out)
    assert code == 1 and not err and 'nan' not in said.lower(), said
    rows = {line.split()[-1]: line.split() for line in said.splitlines() if line.split()[-1] in names}
    assert [rows[n][0] for n in names] == ['done', 'running', 'pending', 'failed', 'cancelled', 'cancelled'], said
    assert 'job' not in ' '.join(rows[names[2]]) and rows[names[4]][2:4] == ['job', '999999996'], rows
    assert 'ValueError: the batch is empty' in said and 'cancelled (scancel): job 999999996' in said, said
    assert 'cancelled by --cancel (Ctrl-C)' in said and 'Working directory' not in said, said
    counts = "1 done, 1 running, 3 pending, 2 cancelled, 1 failed of 8"   # the two stage-1 steps pending
    assert ' '.join(said.split()).endswith(f"{counts} in {out}"), said


def test_a_point_stopped_by_ctrl_c_is_cancelled(tmp_path, monkeypatch):
    fake = tmp_path/'papermill.py'   # papermill's log when its kernel got Ctrl-C
    fake.write_text("import sys\nprint('Traceback (most recent call last):')\nprint('KeyboardInterrupt')\n"
                    "sys.exit(1)\n")
    monkeypatch.setattr(launch, '_papermill_command', lambda: [sys.executable, str(fake)])
    assert launch.run_point('train.ipynb', {}, tmp_path/'p') == 'cancelled'
    assert launch.point_error(tmp_path/'p') == 'stopped by Ctrl-C or SIGTERM'


class Executor:
    "submitit's local executor as `run_jobs` sees it: each job a process of this machine named 'submitit'."
    def __init__(self, folder: Path): self.folder, self.processes = folder, []
    def submit(self, job):
        process = subprocess.Popen([sys.executable, '-c', "import sys, time; sys.stderr.write('controller ready\\n'); "
                                    "sys.stderr.flush(); time.sleep(60)", 'submitit'])
        self.processes.append(process)
        log = self.folder/'controllers.log'   # where `submit` sends what it writes
        while 'controller ready' not in log.read_text(): threading.Event().wait(0.01)
        return type('Job', (), {'job_id': process.pid})()


def test_cancel_says_cancelled_and_the_controller_writes_to_its_log(tmp_path, monkeypatch, capfd):
    out = tmp_path/'s'
    runs = [{'name': 'p', 'folder': out/'p', 'params': {}, 'after': []}]
    executor = Executor(out/'jobs')
    def ctrl_c(seconds): raise KeyboardInterrupt   # while it follows the job
    monkeypatch.setattr(jobs, 'time', SimpleNamespace(sleep=ctrl_c))   # jobs' own clock only
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        jobs.run_jobs(runs, out, Path('train.ipynb'), executor, 'submitit-local', cancel=True)
    assert executor.processes[0].wait(timeout=30) != 0                                # asked to stop
    stopped = (launch.point_status(out/'p'), launch.point_error(out/'p'))
    assert stopped == ('cancelled', 'cancelled by --cancel (Ctrl-C)'), stopped
    assert 'KeyboardInterrupt' not in capfd.readouterr().err                 # its traceback: not on the terminal
    assert 'KeyboardInterrupt' in (out/'jobs'/'controllers.log').read_text()  # but in its log


@pytest.mark.parametrize('argv,message', [
    (['--cancel'], 'drop --cancel'),
    (['SPEC'], 'drop the spec '),
    (['--out', 'elsewhere'], 'drop --out'),
    (['--dry-run'], 'drop --dry-run'),
    (['--workers', '2'], 'drop --workers'),
    (['--launcher', 'slurm'], 'drop --launcher'),
])
def test_options_that_do_not_go_with_status_are_refused(capsys, tmp_path, argv, message):
    out, _ = sweep_folder(tmp_path)
    argv = [spec_file(tmp_path) if a == 'SPEC' else a for a in argv]
    said = refused(capsys, tmp_path, 'sweep', '--status', out, *argv)
    assert '--status OUT only reads the sweep in OUT' in said and message in said, said


@pytest.mark.parametrize('extra', ['--cancel', '--report', '--take-over'])
def test_options_that_do_not_go_with_a_dry_run_are_refused(capsys, tmp_path, extra):
    said = refused(capsys, tmp_path, 'sweep', spec_file(tmp_path), '--dry-run', extra)
    assert f'--dry-run starts nothing: drop {extra}' in said, said


# -- 4. an edited spec names what changed -----------------------------------------------------------------------------

def test_an_edited_spec_names_each_setting_that_changed(capsys, tmp_path):
    out, _ = sweep_folder(tmp_path)
    edited = {**SPEC, 'base': {**BASE, 'lr': 0.001, 'epochs': 2}, 'grid': {'arm': ['bikd', 'control'], 'seed': [1]}}
    for dry in (['--dry-run'], []):
        said = refused(capsys, tmp_path, 'sweep', spec_file(tmp_path, edited), '--out', out, *dry)
        assert f'{out} holds the sweep of another spec' in said, said
        for change in ('base epochs: 1 -> 2', 'base lr: (not set) -> 0.001', 'grid seed: [0] -> [1]'):
            assert change in said, said
        assert 'grid arm' not in said and '--overwrite' in said, said


def test_a_grown_grid_extends_the_sweep(capsys, tmp_path):
    out, _ = sweep_folder(tmp_path)
    grown = {**SPEC, 'grid': {'arm': ['bikd', 'control'], 'seed': [0, 1]}}
    code, said, err = kt_nb(capsys, 'sweep', spec_file(tmp_path, grown), '--out', out, '--dry-run')
    assert code == 0 and said.startswith('4 points of'), (said, err)


# -- 5. the slurm section and a spec's GPUs ---------------------------------------------------------------------------

@pytest.mark.parametrize('slurm,message', [
    ({'time': '1:00:00'}, "slurm: time takes whole minutes, an integer >= 1 (60 for an hour), got '1:00:00'"),
    ({'mem_gb': -1}, 'slurm: mem_gb takes GB per job, a number > 0 (0.5 for 512 MB), got -1'),
    ({'cpus': 2.5}, 'slurm: cpus takes CPUs per job, an integer >= 1, got 2.5'),
    ({'retries': 'often'}, "slurm: retries takes requeues, an integer >= 0, got 'often'"),
])
def test_a_bad_slurm_key_is_named_with_its_unit(capsys, tmp_path, slurm, message):
    said = refused(capsys, tmp_path, 'sweep', spec_file(tmp_path, {**SPEC, 'slurm': slurm}), '--dry-run')
    assert message in said, said


def test_a_specs_gpus_are_named_as_the_specs(capsys, tmp_path, monkeypatch):
    spec = spec_file(tmp_path, {**SPEC, 'gpus': 'all'})
    said = refused(capsys, tmp_path, 'sweep', spec, '--launcher', 'submitit-local', '--out', tmp_path/'s')
    assert "the spec's gpus is for --launcher local" in said and '--gpus' not in said, said
    monkeypatch.setattr(launch, 'visible_gpus', lambda: [])
    said = refused(capsys, tmp_path, 'sweep', spec, '--out', tmp_path/'s')
    assert "the spec's gpus all: torch sees no GPU" in said and '--gpus' not in said, said


# -- 6. one controller per sweep folder -------------------------------------------------------------------------------

def test_a_second_controller_is_refused_naming_the_first(capsys, tmp_path):
    out, _ = sweep_folder(tmp_path)
    hold = hold_folder(out)   # a sweep of this machine that lives: this test
    try:
        said = refused(capsys, tmp_path, 'sweep', spec_file(tmp_path), '--out', out, '--launcher', 'submitit-local')
        assert f'is controlled by another kt-nb sweep, pid {os.getpid()} on {socket.gethostname()} since' in said, said
        assert not (out/'sweep.log').exists() and not (out/'jobs').exists()
    finally: release_folder(out, hold)


def test_controllers_started_together_one_wins(tmp_path):
    out, won, lost = tmp_path/'s', [], []
    out.mkdir()
    start = threading.Barrier(8)
    def one():
        start.wait()
        try: won.append(hold_folder(out))
        except launch.SweepHeld as e: lost.append(str(e))
    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert len(won) == 1 and len(lost) == 7, (won, lost)
    release_folder(out, won[0])
    assert list(out.iterdir()) == []   # no hold, no draft left


def controlled(monkeypatch, out: Path, then=None) -> list:
    "The sweep's local run replaced by one that records who holds the folder while it runs (and then raises `then`)."
    seen = []
    def run_here(runs, where, *args, **kwargs):
        seen.append(read_hold(where))
        if then: raise then
    monkeypatch.setattr(sweeps, 'run_here', run_here)
    return seen


def test_a_killed_controllers_hold_is_taken_over_and_given_back(capsys, tmp_path, monkeypatch):
    out, _ = sweep_folder(tmp_path)
    dead = subprocess.Popen([sys.executable, '-c', '']); dead.wait()
    (out/HOLD).write_text(json.dumps({**this_process(), 'pid': dead.pid, 'since': 0}))
    seen = controlled(monkeypatch, out)
    code, said, err = kt_nb(capsys, 'sweep', spec_file(tmp_path), '--out', out)
    assert [s['pid'] for s in seen] == [os.getpid()], (seen, err)
    assert code == 1 and '0 of 2 points done, 0 failed, 2 not finished' in said and not (out/HOLD).exists(), said


def test_another_machines_hold_is_respected_unless_taken_over(capsys, tmp_path, monkeypatch):
    out, _ = sweep_folder(tmp_path)
    (out/HOLD).write_text(json.dumps({'host': ELSEWHERE, 'pid': 4242, 'started': '7', 'since': time.time() - 60}))
    said = refused(capsys, tmp_path, 'sweep', spec_file(tmp_path), '--out', out)
    assert f'pid 4242 on {ELSEWHERE} since' in said and 'rerun with --take-over' in said, said
    code, status, _ = kt_nb(capsys, 'sweep', '--status', out)   # reading needs no hold
    assert code == 0 and status.startswith(f'controlled by kt-nb sweep pid 4242 on {ELSEWHERE} since'), status
    seen = controlled(monkeypatch, out)
    kt_nb(capsys, 'sweep', spec_file(tmp_path), '--out', out, '--take-over')
    assert [s['host'] for s in seen] == [socket.gethostname()] and not (out/HOLD).exists()


@pytest.mark.parametrize('then,code', [(KeyboardInterrupt(), 130), (RuntimeError('the disk is full'), 1)])
def test_the_hold_is_given_back_on_ctrl_c_and_errors(capsys, tmp_path, monkeypatch, then, code):
    out, _ = sweep_folder(tmp_path)
    seen = controlled(monkeypatch, out, then)
    got, _, err = kt_nb(capsys, 'sweep', spec_file(tmp_path), '--out', out)
    assert got == code and len(seen) == 1 and not (out/HOLD).exists(), err


# -- 7. a setting the data capped is printed, not only stored ---------------------------------------------------------

CAP = 'digits has 1797 images: 64 training samples asked, 37 left after validation and test'


@pytest.fixture(scope='module')
def capped(tmp_path_factory):
    "A tiny demo whose n_train the data caps (digits: 1,797 images, 1,760 of them for validation and test)."
    out = tmp_path_factory.mktemp('capped')/'d'
    import contextlib, io
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        code = main(['demo', '--data', 'digits', '--groups', 'test_resnet:scratch+test_efficientnet:scratch',
                     '--img-size', '16', '--seeds', '1', '--n-train', '64', '--n-val', '900', '--n-test', '860',
                     '--stage1-epochs', '1', '--epochs', '1', '--methods', 'bikd', '--out', str(out)])
    assert code == 0, printed.getvalue()
    return out, printed.getvalue()


def test_the_demo_prints_a_setting_the_data_capped(capped):
    out, printed = capped
    assert f'note: {CAP}' in ' '.join(printed.split()), printed
    assert json.loads((out/'metrics.json').read_text())['notes'] == [CAP]


def test_the_sweep_table_prints_a_setting_the_data_capped(capsys, tmp_path, monkeypatch, capped):
    spec = {**SPEC, 'base': {**BASE, 'n_train': 64, 'n_val': 900, 'n_test': 860}, 'grid': {}}
    out, points = sweep_folder(tmp_path, spec)
    def run_here(runs, where, *args, **kwargs):   # the point's run: the demo's, of the same settings
        for run in runs: shutil.copytree(capped[0], run['folder'], dirs_exist_ok=True)
    monkeypatch.setattr(sweeps, 'run_here', run_here)
    code, said, err = kt_nb(capsys, 'sweep', spec_file(tmp_path, spec), '--out', out)
    assert code == 0 and f"note: {points[0]['name']}: {CAP}" in ' '.join(said.split()), (said, err)
    import pandas as pd
    assert pd.read_csv(out/'results.csv').notes.tolist() == [CAP]
