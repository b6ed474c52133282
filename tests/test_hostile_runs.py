"""Hostile inputs: each is honoured or refused before any training, in one message, and nothing of the user's is written
or moved. In-process (`kt_nb.cli.main`), so each case takes well under a second."""
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kt_nb.cli import main

WIDTH = 120
TINY = ['--groups', 'test_resnet:scratch+test_efficientnet:scratch', '--img-size', '16', '--seeds', '1']
SPEC = ("base: {dataset: digits, groups: [[test_resnet:scratch, test_efficientnet:scratch]], img_size: 16, "
        "n_train: 64, n_val: 16, n_test: 32, stage1_epochs: 1, epochs: 1}\n")


@pytest.fixture(autouse=True)
def here(tmp_path, monkeypatch):
    "Each case runs in its own folder: a default output folder would land there, and be seen."
    monkeypatch.chdir(tmp_path)


def listing(folder: Path) -> dict:
    "Every file and folder below `folder`, with each file's bytes: what a case must leave as it was."
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob('*'))}


def images(folder: Path, counts: dict[str, int]):
    "An image folder of a few 8-pixel PNGs per class."
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (folder/name).mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder/name/f'{i}.png')


@pytest.fixture
def data(tmp_path) -> Path:
    "A data folder of the user's: train/, val/, test/, two classes of unequal size."
    root = tmp_path/'data'
    for split in ('train', 'val', 'test'): images(root/split, {'cat': 6, 'dog': 3})
    return root


def kt_nb(capsys, *argv) -> tuple[int, str]:
    "`kt-nb ARGV` in this process: its exit code and what it printed on stderr, checked to be one message."
    try: code = main([str(a) for a in argv])
    except SystemExit as e: code = e.code   # argparse's usage errors
    out, err = capsys.readouterr()
    lines = err.rstrip('\n').split('\n')
    at = next((i for i, l in enumerate(lines) if l.startswith('kt-nb ') and ': error: ' in l), None)
    assert at is not None and 'Traceback' not in err, err
    assert at == len(lines) - 1, err   # the error is the last line, and one line however long
    return code, ' '.join(lines[at].split())


def refused(capsys, folder: Path, *argv, code: int = 1) -> str:
    "`kt-nb ARGV` ends in one message with `code`, and nothing below `folder` is written or moved."
    before = listing(folder)
    got, said = kt_nb(capsys, *argv)
    assert got == code, (got, said)
    assert listing(folder) == before, said
    return said


# -- 1. stage 1 and the run folder keyed by the data's fingerprint ---------------------------------------------------

def test_stage1_is_keyed_by_the_training_data_not_its_path(tmp_path, monkeypatch):
    "Other images under the same settings train their own stage 1; the same images reuse it."
    from kt_nb.classification.experiment import ClassificationConfig, classification_experiment
    from kt_nb.experiment import runner
    from kt_nb.data.load import load_dataset
    cfg = ClassificationConfig(dataset='digits', groups=[['test_resnet:scratch', 'test_efficientnet:scratch']], img_size=16,
                     n_train=16, n_val=8, n_test=8, stage1_epochs=1)
    data = load_dataset('digits', n_train=16, n_val=8, n_test=8)
    trained = []
    monkeypatch.setattr(runner, 'JointLearner', lambda participants, *a, **kw: trained.append(1) or
                        type('Fit', (), {'fit': lambda self: None})())
    first, _ = runner.train_stage1(classification_experiment, cfg, data, tmp_path/'cache', seed=0)
    relabelled = {**data, 'train': dataclasses.replace(data['train'], labels=(data['train'].labels + 1) % 10)}
    other, reused = runner.train_stage1(classification_experiment, cfg, relabelled, tmp_path/'cache', seed=0)
    assert not reused and other['test_resnet:scratch'].parent != first['test_resnet:scratch'].parent
    same = {**data, 'train': load_dataset('digits', n_train=16, n_val=8, n_test=8)['train']}   # loaded again
    again, reused = runner.train_stage1(classification_experiment, cfg, same, tmp_path/'cache', seed=0)
    assert reused and again == first and len(trained) == 4


def test_a_run_folder_of_other_data_is_refused_before_stage_1(capsys, tmp_path, data, monkeypatch):
    "Cut a run after its folder is claimed, swap two class folders, run again: refused, saying which split changed."
    from kt_nb.experiment import runner
    def cut(*args, **kw): raise KeyboardInterrupt
    monkeypatch.setattr(runner, 'train_stage1', cut)
    argv = ['demo', '--data', data, '--out', tmp_path/'runs'/'x', *TINY]
    assert main([str(a) for a in argv]) == 130
    capsys.readouterr()
    assert json.loads((tmp_path/'runs'/'x'/'data.json').read_text()).keys() == {'train', 'val', 'test'}
    for split in ('train', 'val', 'test'):
        (data/split/'cat').rename(data/split/'tmp'); (data/split/'dog').rename(data/split/'cat')
        (data/split/'tmp').rename(data/split/'dog')
    monkeypatch.setattr(runner, 'train_stage1', lambda *a, **kw: pytest.fail('stage 1 ran'))
    said = refused(capsys, tmp_path, *argv)
    changed = ('was made from other data (the train, val and test splits changed; 18 file(s) changed since kt_nb last '
               'read them: train/cat/0.png, train/cat/1.png, train/cat/2.png, ...): use another folder')
    assert f"{tmp_path/'runs'/'x'} {changed}" in said, said


def cut_after_claim(monkeypatch):
    "Runs stop where stage 1 would start (exit code 130): what comes before it, every check and the claim, has run."
    from kt_nb.experiment import runner
    def cut(*args, **kw): raise KeyboardInterrupt
    monkeypatch.setattr(runner, 'train_stage1', cut)


def test_bytes_rewritten_at_the_same_size_are_seen_and_named(capsys, tmp_path, monkeypatch):
    "BMPs of one size share their file size: swapping two images' bytes changes no size, no name, and is still refused."
    root = tmp_path/'bmp'
    for split in ('train', 'test'):
        for c, colour in (('cat', 0), ('dog', 255)):
            (root/split/c).mkdir(parents=True)
            for i in range(4): Image.new('RGB', (8, 8), (colour, i * 40, 0)).save(root/split/c/f'{i}.bmp')
    cut_after_claim(monkeypatch)
    argv = ['demo', '--data', root, '--out', tmp_path/'runs'/'x', *TINY]
    assert main([str(a) for a in argv]) == 130
    capsys.readouterr()
    cat, dog = root/'train'/'cat'/'0.bmp', root/'train'/'dog'/'0.bmp'
    cat_bytes, dog_bytes = cat.read_bytes(), dog.read_bytes()
    assert len(cat_bytes) == len(dog_bytes)
    cat.write_bytes(dog_bytes); dog.write_bytes(cat_bytes)
    said = refused(capsys, tmp_path/'runs', *argv)
    assert ("was made from other data (the train and val splits changed; 2 file(s) changed since kt_nb last read them: "
            "train/cat/0.bmp, train/dog/0.bmp)") in said, said


def test_a_copy_of_the_data_elsewhere_resumes_the_run_and_shares_its_stage_1(capsys, tmp_path, data):
    "cp -r gives other paths and times: the same run, resumed (nothing trained again), with the same stage-1 weights."
    out = tmp_path/'runs'/'x'
    assert main(['demo', '--data', str(data), '--out', str(out), *TINY, '--methods', 'bikd']) == 0
    stage1 = {p.name: p.read_bytes() for p in (out/'stage1').rglob('*.safetensors')}
    metrics = json.loads((out/'metrics.json').read_text())
    copy = Path(shutil.copytree(data, tmp_path/'scratch'/'data'))
    for f in copy.rglob('*'): os.utime(f, (1e9, 1e9))
    capsys.readouterr()
    assert main(['demo', '--data', str(copy), '--out', str(out), *TINY, '--methods', 'bikd']) == 0
    again = json.loads((out/'metrics.json').read_text())
    assert again['runs'] == metrics['runs'], 'the same run, reported again'
    assert {p.name: p.read_bytes() for p in (out/'stage1').rglob('*.safetensors')} == stage1
    archived = Path(shutil.move(out, tmp_path/'archive'/'x'))   # the run folder moved whole: it resumes and explores
    assert main(['demo', '--data', str(copy), '--out', str(archived), *TINY, '--methods', 'bikd']) == 0
    assert json.loads((archived/'metrics.json').read_text())['runs'] == metrics['runs']
    from kt_nb.classification.explorer import explore_demo
    assert explore_demo(archived).screening.names == ['test_resnet:scratch', 'test_efficientnet:scratch']


def test_links_leaving_the_data_folder_are_refused_unless_allowed(capsys, tmp_path, data, monkeypatch):
    outside = tmp_path/'elsewhere.png'
    (data/'train'/'cat'/'0.png').rename(outside)
    (data/'train'/'cat'/'0.png').symlink_to(outside)
    said = refused(capsys, tmp_path, 'demo', '--data', data, '--out', tmp_path/'runs'/'x', *TINY)
    assert (f"1 file(s) of {data} lie outside it (links, or '..' in a name), e.g. train/cat/0.png: copy them in, or "
            "allow links outside the data folder") in said, said
    cut_after_claim(monkeypatch)
    argv = ['demo', '--data', data, '--out', tmp_path/'runs'/'x', *TINY, '--set', 'links_outside=true']
    assert main([str(a) for a in argv]) == 130   # allowed: on to stage 1


# -- 2. nothing of the user's is moved -------------------------------------------------------------------------------

def test_out_on_the_data_with_overwrite_leaves_the_data_alone(capsys, tmp_path, data):
    said = refused(capsys, tmp_path, 'demo', '--data', data, '--out', data, '--overwrite', *TINY)
    assert f"{data} is the data folder: a run writes its own folder; use another folder (--out)" in said, said
    assert 'Traceback' not in said and '--overwrite' not in said


@pytest.mark.parametrize('where,message', [('inside', 'lies inside the data folder'),
                                           ('above', 'holds the data folder')])
def test_out_inside_or_above_the_data_is_refused(capsys, tmp_path, data, where, message):
    out = data/'train'/'runs' if where == 'inside' else tmp_path
    assert message in refused(capsys, tmp_path, 'demo', '--data', data, '--out', out, '--overwrite', *TINY)


def test_out_in_the_folder_of_a_table_is_refused(capsys, tmp_path, data):
    "A table's paths start at its folder: that folder is the data."
    table = tmp_path/'labels.csv'
    table.write_text('path,label,split\n' + ''.join(f"data/{s}/cat/{i}.png,cat,{s}\n" for s in ('train', 'test')
                                                    for i in range(6)))
    said = refused(capsys, tmp_path, 'demo', '--data', table, '--out', tmp_path/'run', *TINY)
    assert f"lies inside the folder of the data's table {tmp_path.resolve()}" in said, said


def test_overwrite_moves_no_folder_kt_nb_did_not_write(capsys, tmp_path):
    mine = tmp_path/'mine'
    mine.mkdir(); (mine/'thesis.tex').write_text('years of work')
    said = refused(capsys, tmp_path, 'demo', '--data', 'digits', '--out', mine, '--overwrite', *TINY)
    assert 'holds files but no kt_nb run (thesis.tex)' in said and '--overwrite' not in said, said


def test_a_sweep_into_its_data_is_refused(capsys, tmp_path, data):
    (tmp_path/'spec.yaml').write_text(SPEC)
    said = refused(capsys, tmp_path, 'sweep', tmp_path/'spec.yaml', '--data', data, '--out', data/'sweep')
    assert 'lies inside the data folder' in said, said


# -- 3. every input honoured or refused ------------------------------------------------------------------------------

def test_repeated_set_merges_and_each_value_is_checked(capsys, tmp_path):
    said = refused(capsys, tmp_path, 'demo', '--set', 'epochs=abc', '--set', 'lr=1e-3', '--out', tmp_path/'d', *TINY)
    assert "parameter 'epochs': must be an integer, got 'abc'" in said, said   # not dropped for the later --set


@pytest.mark.parametrize('argv,message', [
    (['--set', 'lr=1', '--set', 'lr=2'], 'lr is given twice (--set lr=1, --set lr=2): give it once'),
    (['--data', 'digits', '--set', 'dataset=fashion_mnist'],
     'dataset is given twice (--data digits, --set dataset=fashion_mnist)'),
    (['--set', 'img_size=64'], 'img_size is given twice (--img-size 16, --set img_size=64)'),
    (['--on-error', 'skip', '--set', 'on_error=raise'], 'on_error is given twice (--on-error skip, --set on_error=raise)'),
])
def test_a_setting_given_twice_is_refused_naming_both(capsys, tmp_path, argv, message):
    assert message in refused(capsys, tmp_path, 'demo', *TINY, *argv, '--out', tmp_path/'d')


@pytest.mark.parametrize('retired,instead', [('--skip-unreadable', '--on-error skip'),
                                             ('--paper-gradients', '--detach-teacher false')])
def test_a_retired_option_names_the_settings_own(capsys, tmp_path, retired, instead):
    "Two spellings of earlier versions repeated a setting's option: each answers with that option, in one line, exit 2."
    try: main(['demo', *TINY, retired, '--out', str(tmp_path/'d')])
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err == f"kt-nb demo: error: {retired} is retired: write {instead}\n", err
    assert not (tmp_path/'d').exists()


def test_an_option_given_twice_is_refused(capsys, tmp_path):
    said = refused(capsys, tmp_path, 'demo', '--data', 'digits', '--dataset', 'fashion_mnist', '--out', tmp_path/'d',
                   code=2)
    assert 'dataset is given twice (--data digits, --dataset fashion_mnist): give it once' in said, said


def test_the_same_group_in_another_order_is_refused(capsys, tmp_path):
    said = refused(capsys, tmp_path, 'demo', '--groups', 'resnet10t:scratch+test_vit:scratch',
                   'test_vit:scratch+resnet10t:scratch', '--out', tmp_path/'d', code=2)
    assert 'repeats group(s)' in said and '(the same models, in any order)' in said, said


def test_an_image_size_a_vit_cannot_take_is_refused_before_any_folder(capsys, tmp_path):
    said = refused(capsys, tmp_path, 'demo', '--groups', 'resnet10t:scratch+test_vit:scratch', '--img-size', '33',
                   '--out', tmp_path/'d')
    assert "img_size=33 does not fit 'test_vit' (Input height (33) should be divisible by patch size (16).)" in said


def test_sweep_data_with_a_grid_over_the_data_is_refused(capsys, tmp_path):
    (tmp_path/'spec.yaml').write_text(SPEC + "grid:\n  dataset: [digits, fashion_mnist]\n")
    said = refused(capsys, tmp_path, 'sweep', tmp_path/'spec.yaml', '--data', 'digits', '--out', tmp_path/'s')
    assert "the spec's grid sweeps over the data (axis 'dataset'), which --data digits would replace" in said, said


def test_download_reaches_the_data_loader(capsys, tmp_path, monkeypatch):
    "`--download` (and a `download` setting) is passed to `load_dataset` for timm names, which need it to fetch."
    from kt_nb.classification import experiment
    asked = {}
    def loader(name, **kw):
        asked.update(kw, name=name)
        raise FileNotFoundError('no internet here')
    monkeypatch.setattr(experiment, 'load_dataset', loader)
    said = refused(capsys, tmp_path, 'demo', '--data', 'torch/cifar10', '--download', '--out', tmp_path/'d', *TINY)
    assert 'no internet here' in said and asked['download'] is True and asked['name'] == 'torch/cifar10'


# -- 4. a failed sweep point says why --------------------------------------------------------------------------------

def test_a_failed_point_records_and_prints_its_own_error(capsys, tmp_path, monkeypatch):
    "The error the point's notebook raised, in one line, with advice a spec can take (not papermill's 'In [4]')."
    import torch
    from kt_nb.data.sources import FileSet, ImageTransform
    from kt_nb.experiment import launch
    (tmp_path/'x.png').write_bytes(b'not an image')
    broken = FileSet(tmp_path, ['x.png'], torch.tensor([0]), ['cat'], 'x/train', ImageTransform(16), 'raise')
    with pytest.raises(Exception) as raised: broken[0]
    fake = tmp_path/'papermill.py'   # papermill's way of failing: the executed notebook keeps the error
    error = {'output_type': 'error', 'ename': type(raised.value).__name__, 'evalue': str(raised.value), 'traceback': []}
    fake.write_text("import json, sys\nprint('Exception encountered at \"In [4]\":')\n"
                    f"json.dump({{'cells': [{{'outputs': [{error!r}]}}]}}, open(sys.argv[2], 'w'))\nsys.exit(1)\n")
    monkeypatch.setattr(launch, '_papermill_command', lambda: [sys.executable, str(fake)])
    (tmp_path/'spec.yaml').write_text(SPEC)
    code = main(['sweep', str(tmp_path/'spec.yaml'), '--out', str(tmp_path/'s')])
    out, err = capsys.readouterr()
    failed = [l for l in err.splitlines() if l.startswith('failed: ')]
    assert code == 1 and len(failed) == 1 and '0 of 1 points done, 1 failed' in out, (out, err)
    said = ' '.join(err.split())
    assert 'UnreadableImage: cannot read image x.png' in said and 'In [4]' not in said, said
    assert "or set on_error: skip in the spec's base" in said and "on_error='skip'" not in said, said
    assert 'notebook.ipynb' in said and all(len(l) <= WIDTH for l in err.splitlines())


# -- 5. more hostile inputs, each refused before any work ------------------------------------------------------------

@pytest.mark.parametrize('spec,message', [
    ("grid:\n  epoch: [1, 2]\n", "unknown setting(s) 'epoch' (did you mean 'epochs'?)"),
    ("grid:\n  lr: []\n", "the sweep spec's grid: axis 'lr' must be a non-empty list, got []"),
    ("threads: -1\n", "the sweep spec's threads: must be >= 0, got -1"),
    ("base: {threads: 1}\n", "the sweep spec's base sets 'threads', a setting of the sweep, not of the task: write 'threads: 1' "
                              "at the spec's top level"),
    ("base: {epochs: [1]}\n", "parameter 'epochs': must be an integer, got [1]"),
    ("grid:\n  arm: [bikd, bikd]\n", 'two grid points have the same settings'),
    ("grid:\n  seed: [-1]\n", 'must be >= 0, got -1'),
    ("grid:\n  arm: ['kd:x']\n", "kd's option is the teacher's index among the participants (kd:0, kd:1), got 'x'"),
    ("hooks: kt_nb.classification.experiment\n", "hooks are named 'module:object'"),
])
def test_a_bad_spec_is_refused_before_any_point(capsys, tmp_path, spec, message):
    (tmp_path/'spec.yaml').write_text(spec)
    assert message in refused(capsys, tmp_path, 'sweep', tmp_path/'spec.yaml', '--out', tmp_path/'s')


@pytest.mark.parametrize('argv,message', [
    (['--workers', '-1'], '--workers: must be >= 1, got -1'),
    (['--workers', 'two'], "--workers: must be an integer or None, got 'two'"),
    (['--timeout', '-5'], '--timeout: must be positive, got -5'),
    (['--timeout', 'nan'], '--timeout: must be finite, got nan'),
    (['--launcher', 'cluster'], "--launcher: unknown value 'cluster'; choose from ['local', 'slurm', 'submitit-local']"),
])
def test_bad_sweep_options_are_usage_errors(capsys, tmp_path, argv, message):
    (tmp_path/'spec.yaml').write_text(SPEC)
    assert message in refused(capsys, tmp_path, 'sweep', tmp_path/'spec.yaml', *argv, '--out', tmp_path/'s', code=2)


@pytest.mark.parametrize('argv,message,code', [
    (['--lr', 'nan'], '--lr: must be finite, got nan', 2),
    (['--n-train', '0'], '--n-train: must be >= 1, got 0', 2),
    (['--workers', '-1'], '--workers: must be >= 0, got -1', 2),
    (['--set', 'batch_size=two'], "parameter 'batch_size': must be an integer, got 'two'", 1),
    (['--set', 'methods=[control]'], 'lists the control, which always runs', 1),
    (['--set', '=3'], 'a setting is NAME=VALUE', 2),
    (['--channels-last', 'maybe'], "--channels-last: must be True or False, got 'maybe'", 2),
    (['--methods', 'kd:x'], "--methods: kd's option is the teacher's index among the participants (kd:0, kd:1), got 'x'", 2),
    (['--methods', 'kd:../x'], "kd's option is the teacher's index", 2),
])
def test_bad_demo_values_are_refused(capsys, tmp_path, argv, message, code):
    assert message in refused(capsys, tmp_path, 'demo', *TINY, *argv, '--out', tmp_path/'d', code=code)


@pytest.mark.parametrize('params,message', [
    ({'threads': -1}, "parameter 'threads': must be >= 0, got -1"),
    ({'arms': 'bikd'}, "parameter 'arms': must be a list of arm names, got 'bikd'"),
    ({'arms': ['dml']}, "parameter 'arms': arm(s) ['dml'] are not in this experiment"),
    ({'seeds': [0, 0]}, "parameter 'seeds': names one of its seeds twice"),
    ({'seeds': [-1]}, "parameter 'seeds': must be a list of seeds >= 0, got [-1]"),
    ({'quick': 'yes'}, "parameter 'quick': must be True or False, got 'yes'"),
    ({'settings': 'lr=1e-3'}, "parameter 'settings': must be a mapping of setting names to values"),
    ({'seed': [0]}, "unknown parameter(s) 'seed' (did you mean 'seeds'?)"),
])
def test_bad_training_notebook_parameters_are_refused(params, message):
    "What papermill hands train.ipynb, checked by its first cell before anything is loaded."
    from dataclasses import asdict
    from kt_nb.experiment.sweeps import TrainParameters, check_train_params
    given = asdict(TrainParameters())
    with pytest.raises(ValueError) as refusal:
        check_train_params({**given, 'settings': {'methods': ['bikd']}, **params})
    assert message in str(refusal.value), str(refusal.value)
