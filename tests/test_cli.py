"The `kt-nb` console script as a user runs it."
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

KT_NB = Path(sys.executable).parent / 'kt-nb'


ROOT = Path(__file__).resolve().parents[1]
WIDTH = 120   # the most columns a line kt-nb prints may take


def run(*args, **kw):
    return subprocess.run([str(KT_NB), *args], capture_output=True, text=True, timeout=600, **kw)


def in_process(capsys, *args, cwd=None) -> tuple[int, str]:
    """`kt-nb ARGS` through `kt_nb.cli.main`, the function the console script calls, in this process: its exit code and
    what it wrote to stderr. For tests of many refusals, each of which would otherwise pay a new interpreter's imports;
    the other tests here run the console script itself."""
    from kt_nb.cli import main
    capsys.readouterr()
    here = os.getcwd()
    if cwd: os.chdir(cwd)
    try: code = main(list(map(str, args)))
    except SystemExit as e: code = e.code   # argparse's usage errors
    finally: os.chdir(here)
    return code, capsys.readouterr().err


def flat(text: str) -> str:
    "`text` with its line breaks and indents as single spaces: what a wrapped message says."
    return ' '.join(text.split())


def one_message(stderr: str) -> str:
    "An error as kt-nb prints it: one line, however long, and no traceback; returned flat."
    lines = stderr.rstrip('\n').split('\n')
    assert len(lines) == 1 and lines[0].startswith('kt-nb ') and 'Traceback' not in stderr, stderr
    return flat(stderr)


def longest(*outputs: str) -> int:
    return max(len(line) for text in outputs for line in text.splitlines())


def test_demo_quick_writes_metrics(tmp_path):
    result = run('demo', '--quick', '--out', str(tmp_path / 'd'))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / 'd' / 'metrics.json').read_text())
    assert metrics['settings']['seeds'] == 1
    starts = {r['model']: r['acc'] for r in metrics['runs'] if r['method'] == 'start'}
    assert set(starts) == {'tf_efficientnet_lite0', 'tf_efficientnet_lite1'}
    methods = {r['method'] for r in metrics['runs']}
    assert methods == {'start', 'control', 'bikd', 'dml'}
    # a real training run: the fine-tuned models are well above chance (10 %) on the test split
    assert all(acc > 0.3 for acc in starts.values()), starts
    assert '− control' in result.stdout and 'vs control' in result.stdout and 'wall time' in result.stdout
    # everything it prints fits 120 columns; the table with every column is beside metrics.json, and it says where
    assert longest(result.stdout, result.stderr) <= WIDTH, (result.stdout, result.stderr)
    arms = pd.read_csv(tmp_path / 'd' / 'arms.csv')
    assert list(arms.columns) == ['group', 'model', 'method', 'start', 'acc', '− control', '95 %', 'vs control',
                                  'taught', 'seeds']
    assert len(arms) == 6 and f"every column of the table: {tmp_path / 'd' / 'arms.csv'}" in result.stdout
    assert (tmp_path / 'd' / metrics['stage1']['tf_efficientnet_lite0']).is_file()   # kept below d/stage1, per setting
    assert metrics['stage1']['tf_efficientnet_lite0'].startswith('stage1/')
    assert 'start of seed 0: 2 models' in result.stderr and 'arm 3/3 in ' in result.stderr   # progress, off a terminal
    # the same folder with other settings: refused before any work, and no byte of the first run changes
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / 'd').rglob('*') if p.is_file()}
    again = run('demo', '--quick', '--data', 'digits', '--out', str(tmp_path / 'd'))
    assert again.returncode == 1, again.stderr
    said = one_message(again.stderr)
    assert 'was made from other data (the train, val and test splits changed)' in said, said   # known by content
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / 'd').rglob('*') if p.is_file()} == before


def test_bad_arguments_fail_before_work(tmp_path):
    result = run('demo', '--groups', 'resnet10t', '--out', str(tmp_path / 'x'))
    assert result.returncode == 2 and 'needs 2 or more models' in flat(result.stderr)
    assert not (tmp_path / 'x').exists()


def test_repeated_groups_are_refused_before_work(tmp_path, capsys):
    for groups in (['resnet10t:scratch+test_vit:scratch'] * 2, ['resnet10t:scratch+resnet10t:scratch']):
        code, err = in_process(capsys, 'demo', '--quick', '--groups', *groups, '--out', tmp_path / 'z')
        said = flat(err)
        assert code == 2 and ('repeats group(s)' in said or 'names each model once' in said), err
        assert not (tmp_path / 'z').exists()


def test_unknown_model_is_named(tmp_path, capsys):
    code, err = in_process(capsys, 'demo', '--quick', '--groups', 'resnet10t:scratch+efficientnet_b99',
                           '--out', tmp_path / 'y')
    assert code != 0
    assert "timm has no model 'efficientnet_b99'" in flat(err)


def test_readme_is_rendered_from_index(tmp_path):
    root = Path(__file__).resolve().parents[1]
    subprocess.run([str(Path(sys.executable).parent / 'jupyter'), 'nbconvert', '--log-level=ERROR', '--to', 'markdown',
                    '--TagRemovePreprocessor.enabled=True',
                    '--TagRemovePreprocessor.remove_all_outputs_tags={"hide_output_in_readme"}',
                    '--RegexRemovePreprocessor.patterns=["#\\\\| hide"]',   # hidden cells (tests) stay off the page
                    '--NbConvertBase.display_data_priority=["text/markdown","image/png","text/plain"]',   # text tables
                    '--output-dir', str(tmp_path), '--output', 'README', str(root / 'index.ipynb')], check=True)
    assert (tmp_path / 'README.md').read_text() == (root / 'README.md').read_text(), "README.md is stale: run `make readme`"


def test_bench_prints_its_table_and_writes_json(tmp_path):
    result = run('bench', '--device', 'cpu', '--models', 'test_efficientnet', 'test_vit', '--img-size', '32',
                 '--batch-size', '8', '--steps', '2', '--warmup', '1', '--out', str(tmp_path / 'bench.json'))
    assert result.returncode == 0, result.stderr
    for row in ('test_efficientnet alone', 'test_vit alone', 'transfer (bikd)', 'frozen anchor', "paper's step"):
        assert row in result.stdout, result.stdout
    assert 'transfer / sum of alone:' in result.stdout
    saved = json.loads((tmp_path / 'bench.json').read_text())
    assert len(saved['rows']) == 5 and all(r['img_per_s'] > 0 and r['tflops'] > 0 for r in saved['rows'])


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    plain = run('demo', '--quick', '--data', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'a'))
    assert plain.returncode == 1, plain.stderr
    said = one_message(plain.stderr)
    assert 'no data set' in said and '--debug shows where' in said
    assert not (tmp_path / 'a').exists()   # a run that cannot start claims no folder
    debug = run('demo', '--quick', '--debug', '--data', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'a'))
    assert debug.returncode == 1 and 'Traceback' in debug.stderr and 'FileNotFoundError' in debug.stderr
    code, err = in_process(capsys, 'demo', '--seeds', '0')
    assert code == 2 and '--seeds: must be >= 1, got 0' in flat(err)   # bad arguments: exit 2


def test_bench_and_device_mistakes_are_refused_before_work(tmp_path, capsys):
    "Each case once wasted minutes or lost a file; each now ends at once, in one line, and writes nothing (in-process)."
    notes = tmp_path / 'notes.txt'
    notes.write_text('my notes')
    tiny = ['bench', '--device', 'cpu', '--models', 'test_efficientnet', 'test_vit', '--img-size', '32', '--steps', '1', '--warmup', '1']
    cases = [(tiny + ['--out', str(tmp_path)], 'is a folder: give a file name'),
             (tiny + ['--out', str(notes)], 'holds no benchmark results'),
             (tiny + ['--batch-size', '1', '--out', str(tmp_path / 'b.json')], 'batch norm needs 2 or more'),
             (['bench', '--device', 'cuda', '--out', str(tmp_path / 'c.json')], 'no GPU is visible here')]
    import torch
    for args, message in cases[:3] + ([] if torch.cuda.is_available() else cases[3:]):
        code, err = in_process(capsys, *args)
        assert code == 1 and message in one_message(err), (args, err)
    if not torch.cuda.is_available():   # a setting's check runs as the option is read: a usage error, exit 2
        code, err = in_process(capsys, 'demo', '--quick', '--device', 'cuda', '--out', tmp_path / 'd')
        said = flat(err)
        assert code == 2 and "--device: device 'cuda' asked but no GPU is visible here" in said, said
    assert notes.read_text() == 'my notes' and sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt']


def test_spec_and_folder_mistakes_are_one_line(tmp_path, capsys):
    "A malformed, list-shaped or folder spec, and an --out below a file: one line each, exit 1, nothing written."
    (tmp_path / 'broken.yaml').write_text('base: {n_train: 3\n')
    (tmp_path / 'list.yaml').write_text('- 1\n- 2\n')
    (tmp_path / 'specs').mkdir()
    (tmp_path / 'afile').write_text('mine')
    tiny = str(ROOT / 'sweeps' / 'tiny.yaml')
    cases = [(['sweep', str(tmp_path / 'broken.yaml')], 'broken.yaml is not valid YAML: ', 'while parsing a flow mapping'),
             (['sweep', str(tmp_path / 'list.yaml')], 'list.yaml holds a list; a spec is a mapping'),
             (['sweep', str(tmp_path / 'specs')], 'specs is a folder: name a .yaml file'),
             (['sweep', tiny, '--out', str(tmp_path / 'afile')], 'afile is a file, so'),
             (['demo', '--quick', '--out', str(tmp_path / 'afile' / 'demo')], 'afile is a file, so')]
    for args, *message in cases:   # the file, and what the YAML parser said (quoted as it may be)
        code, err = in_process(capsys, *args, cwd=tmp_path)
        assert code == 1 and all(m in one_message(err) for m in message), (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['afile', 'broken.yaml', 'list.yaml', 'specs']
    assert (tmp_path / 'afile').read_text() == 'mine'


@pytest.mark.parametrize('name', ['demo', 'three', 'segmentation', 'video_saliency', 'sweeps/embedded_default'])
def test_compact_table_fits_and_shows_the_arm_tables_cells(name):
    "The published results (two and three models; accuracy, mIoU, CC; a sweep) laid out for a terminal, cell for cell."
    from kt_nb.experiment.evidence import arm_table, compact_table, compact_text
    from kt_nb.experiment.sweeps import load_results
    path = ROOT / 'results' / name
    results = load_results(path) if path.is_dir() else json.loads(path.with_suffix('.json').read_text())
    text = compact_text(results)
    assert longest(text) <= WIDTH, text
    compact, rich = compact_table(results), arm_table(results)
    assert compact.to_dict('index') == rich.reorder_levels(compact.index.names)[compact.columns].to_dict('index')
    lines = text.splitlines()
    for (*arm, model), row in compact.iterrows():
        keys = dict(zip(compact.index.names[:-1], arm))
        name = 'control: each model alone' if keys['method'] == 'control' else keys['method']
        where = [keys[k] for k in ('group', 'setting') if keys.get(k) not in (None, '', 'all')]
        heading = next(i for i, l in enumerate(lines)
                       if re.match(re.escape(name) + '( in |,|$)', l) and all(w in l for w in where))
        shown = next(l for l in lines[heading + 1:] if l.startswith(f'  {model} '))   # the model's row under its arm
        assert all(cell in shown for cell in row if cell), (row.tolist(), shown)
