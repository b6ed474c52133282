"A user's install: the package built and installed (not editable) into a fresh virtual environment runs a sweep from an empty folder."
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# one point, a whole experiment (stage 1, the control and bikd) in one kernel: the installed notebooks at work
SPEC = """
threads: 1
base: {dataset: digits, n_train: 64, n_val: 32, n_test: 64, img_size: 16, stage1_epochs: 1, epochs: 1,
       groups: [[test_resnet:scratch, test_efficientnet:scratch]], methods: [bikd]}
grid:
  seed: [0]
"""


def test_installed_package_sweeps_from_an_empty_folder(tmp_path):
    venv = tmp_path/'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    python = venv/'bin'/'python'
    new_site = Path(subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                   capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies come from the test's own environment (no downloads); kt_nb itself does not
    (new_site/'dependencies.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    source = tmp_path/'source'   # a copy, so that the build leaves nothing in the checkout
    skipped = shutil.ignore_patterns('.venv', '.git', 'build', 'runs', 'test-artifacts', '*.egg-info', '__pycache__')
    ignore = lambda folder, names: skipped(folder, names) | ({'data'} if Path(folder) == ROOT else set())   # not kt_nb/data
    shutil.copytree(ROOT, source, ignore=ignore)
    built = subprocess.run([str(python), '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index', '-q',
                            '--target', str(new_site), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    assert 'would be ignored' not in built.stdout + built.stderr and 'SetuptoolsDeprecationWarning' not in built.stderr, built.stderr
    installed = {p.parent.name for p in (new_site/'kt_nb').glob('*/__init__.py')}
    assert installed == {'data', 'engine', 'experiment', 'classification', 'segmentation', 'saliency', 'examples'}, installed
    assert {'train.ipynb', 'report.ipynb'} <= {p.name for p in (new_site/'kt_nb'/'notebooks').glob('*.ipynb')}
    empty = tmp_path/'elsewhere'
    empty.mkdir()
    (empty/'tiny.yaml').write_text(SPEC)
    env = {**{k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')},
           'PATH': os.pathsep.join([str(new_site/'bin'), str(venv/'bin'), '/usr/bin', '/bin'])}
    where = subprocess.run([str(python), '-c', 'import kt_nb.experiment.sweeps as r; print(r.__file__); print(r.TRAIN_NOTEBOOK.is_file())'],
                           cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    lines = where.stdout.split()
    assert lines[0].startswith(str(new_site)) and lines[1] == 'True', where.stdout + where.stderr   # the installed copy, notebooks included
    result = subprocess.run([str(new_site/'bin'/'kt-nb'), 'sweep', 'tiny.yaml', '--out', 'sweep'], cwd=empty, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    table = (empty/'sweep'/'results.csv').read_text().splitlines()
    assert len(table) == 2 and ',done,' in table[1], table
    runs = json.loads((empty/'sweep'/table[1].split(',')[0]/'metrics.json').read_text())['runs']
    assert {r['method'] for r in runs} == {'start', 'control', 'bikd'}, runs   # the whole experiment ran in the point
