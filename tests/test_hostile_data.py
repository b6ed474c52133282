"""Data that fights back: copied, cut short, leaky, ambiguous. A run follows its data where it moved, and refuses in
one line, naming the thing and the way out, where it changed; nothing is written or moved by a refusal."""
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from kt_nb.cli import main
from kt_nb.data.load import load_dataset
from kt_nb.engine.checkpoints import CheckpointMismatch
from kt_nb.engine.learner import JointLearner
from kt_nb.engine.models import participant


def tiny_folder(root, n=16, classes=('a', 'b'), splits=('train', 'val')):
    "`n` 8x8 PNGs per class and split, each a different image."
    rng = np.random.default_rng(0)
    for split in splits:
        for c in classes:
            (root/split/c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root/split/c/f'{i}.png')
    return root


def files_below(folder):
    "Every file below `folder` with its size and modification time: what a refusal must leave as it was."
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob('*')) if p.is_file()}


def learner(data, out):
    torch.manual_seed(0)   # the same starting weights each time
    return JointLearner([participant('resnet10t', 2, pretrained=False, img_size=32)], data['train'], method='control',
                        epochs=1, batch_size=16, progress=False, out=out)


def test_a_run_resumes_on_a_copy_of_its_data_and_refuses_data_that_changed(tmp_path):
    data = load_dataset(tiny_folder(tmp_path/'photos'), img_size=32, augment=False)
    learner(data, tmp_path/'run').fit()   # one epoch on 32 images: its checkpoint names the data by its fingerprint
    copy = shutil.copytree(tmp_path/'photos', tmp_path/'elsewhere'/'photos')   # cp -r: other paths
    for f in copy.rglob('*'): os.utime(f, (1e9, 1e9))                          # and other times
    moved = load_dataset(copy, img_size=32, augment=False)
    assert moved['train'].fingerprint() == data['train'].fingerprint()
    learner(moved, tmp_path/'run').fit(resume=True)   # accepted: the same data, elsewhere

    Image.new('RGB', (8, 8)).save(copy/'train'/'b'/'new.png')   # a file added since
    changed = load_dataset(copy, img_size=32, augment=False)
    before = files_below(tmp_path/'run')
    with pytest.raises(CheckpointMismatch) as refused:
        learner(changed, tmp_path/'run').fit(resume=True)
    assert "was written on other training data: 29 samples then, 30 now" in str(refused.value), refused.value
    assert files_below(tmp_path/'run') == before   # nothing written or moved


def cut_tar(root):
    "A tar of class folders, cut inside its last member's header: tarfile alone would read the members before."
    folder = tiny_folder(root/'x', 4)
    with tarfile.open(root/'photos.tar', 'w') as tar:
        for c in ('a', 'b'): tar.add(folder/'train'/c, arcname=c)
    with tarfile.open(root/'photos.tar') as tar: last = tar.getmembers()[-1]
    (root/'cut.tar').write_bytes((root/'photos.tar').read_bytes()[:last.offset + 100])
    return root/'cut.tar'


def table(root, rows):
    tiny_folder(root/'t', 4)
    (root/'t'/'labels.csv').write_text('path,label,split\n' + ''.join(f'{r}\n' for r in rows))
    return root/'t'/'labels.csv'


HOSTILE = {   # what the user passes: (the data, made in tmp_path; a phrase of the one line they read)
    'a tar cut short': (cut_tar, "error: the tar {tmp}/cut.tar is cut short or damaged after its first"),
    'a test image that is also a training image': (
        lambda root: table(root, ['train/a/0.png,a,train', 'train/b/0.png,b,train', 'train/a/0.png,a,test']),
        "1 val/test row(s) name files that training rows name too, e.g. row 4 (test): train/a/0.png; a file belongs "
        "to one split"),
    'a file twice': (
        lambda root: table(root, ['train/a/0.png,a,train', 'train/b/0.png,b,train', 'train/b/0.png,b,train']),
        "1 file(s) have more than one row, e.g. rows [3, 4]: train/b/0.png; give each file one row"),
    'a stray class index': (
        lambda root: table(root, ['train/a/0.png,0,train', 'train/a/1.png,1,train', 'train/b/0.png,2,train',
                                  'train/b/1.png,49,train']),
        "labels up to 49 make 50 classes, and 46 of them lack training images ([3, 4, 5, 6, 7]): row(s) [5] have "
        "label(s) [49], beyond the others"),
    'a test class training never sees': (
        lambda root: table(root, ['train/a/0.png,a,train', 'train/b/0.png,b,train', 'val/a/0.png,c,test']),
        "row 4 (val/a/0.png, test) has label 'c', which no training row has"),
    "a row that leaves the table's folder": (
        lambda root: tiny_folder(root/'other', 1) and
        table(root, ['train/a/1.png,a,train', 'train/b/0.png,b,train', '../other/train/a/0.png,a,train']),
        "1 file(s) of {tmp}/t lie outside it (links, or '..' in a name), e.g. ../other/train/a/0.png: copy them in"),
    'one class': (lambda root: tiny_folder(root/'one', 4, classes=('a',)),
                  "{tmp}/one/train holds one class folder ('a'): a classifier needs two or more"),
}


@pytest.mark.parametrize('case', HOSTILE, ids=lambda c: c.replace(' ', '-'))
def test_hostile_data_is_refused_in_one_line_before_any_work(case, tmp_path, capsys):
    make, phrase = HOSTILE[case]
    data = make(tmp_path)
    rc = main(['demo', '--quick', '--data', str(data), '--out', str(tmp_path/'demo')])
    err = capsys.readouterr().err
    assert rc == 1 and 'Traceback' not in err and err.count('error:') == 1, err
    assert phrase.format(tmp=tmp_path) in err.strip().splitlines()[-1], err   # the error: its last line, one line
    assert not (tmp_path/'demo').exists()


def test_a_folder_named_like_a_built_in_set_is_refused_with_both_spellings(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_folder(tmp_path/'digits', 4)
    with pytest.raises(SystemExit) as stopped:   # refused as the option is read: a usage error
        main(['demo', '--quick', '--data', 'digits', '--out', str(tmp_path/'demo')])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stopped.value.code == 2 and ("'digits' is both kt_nb's built-in set and the folder ./digits: write 'builtin:digits' for the "
                        "built-in set, or './digits' for the folder") in err, err
    assert not (tmp_path/'demo').exists()
    assert load_dataset('./digits')['train'].classes == ('a', 'b')   # the folder, as spelled
    assert load_dataset('builtin:digits')['train'].name == 'digits/train'   # the built-in, as spelled


def test_a_split_left_empty_by_skipping_is_named(tmp_path):
    "Every test image unreadable, with and without loader workers: one line naming the split, not an IndexError."
    from kt_nb.engine.predictions import predict
    folder = tiny_folder(tmp_path/'photos', 4, splits=('train', 'val'))
    for f in (folder/'val').rglob('*.png'): f.write_bytes(b'')
    data = load_dataset(folder, img_size=32, on_error='skip')
    model = participant('resnet10t', 2, pretrained=False, img_size=32)
    for workers in (0, 2):
        with pytest.raises(ValueError) as refused:
            predict([model], data['test'], workers=workers)
        assert str(refused.value).startswith("every image of photos/val is unreadable (8 file(s), e.g. val/a/0.png"), \
            refused.value
    assert sorted(data['test'].unreadable()) == sorted(f'val/{c}/{i}.png' for c in 'ab' for i in range(4))


# The explorer opens what a user points it at: a folder that is no demo, a demo whose files were damaged or deleted,
# a ledger written on other data. Each is refused in one line, before any model is screened.
def demo_folder(tmp_path, metrics='{}'):
    out = tmp_path/'demo'
    (out/'runs'/'a+b-bikd-seed0'/'ledger').mkdir(parents=True)
    (out/'metrics.json').write_text(metrics)
    return out


def ledger_of(folder, names):
    import pandas as pd
    pd.DataFrame({'sample': range(len(names)), 'sample_id': names}).to_parquet(folder/'samples.parquet')
    return folder


EXPLORER = {
    'no demo there': (lambda t: t/'nothing', 'no finished demo in'),
    'a file, not a folder': (lambda t: (t/'notes.txt').write_text('x') and t/'notes.txt', 'no finished demo in'),
    'metrics.json damaged': (lambda t: demo_folder(t, '{"settings": '), 'metrics.json'),
    'metrics.json of something else': (lambda t: demo_folder(t, '{"rows": []}'), 'metrics.json'),
    'stage-1 weights deleted': (lambda t: demo_folder(t, json.dumps(
        {'settings': {'dataset': 'digits', 'n_train': 20, 'n_val': 10, 'n_test': 10, 'img_size': 16,
                      'groups': [['resnet10t', 'resnet14t']]}, 'stage1': {'resnet10t': 'stage1/r10.safetensors'}})),
                                'r10.safetensors'),
    "stage-1 weights edited to another run's": (lambda t: demo_folder(t, json.dumps(
        {'settings': {'dataset': 'digits', 'n_train': 20, 'n_val': 10, 'n_test': 10, 'img_size': 16,
                      'groups': [['resnet10t', 'resnet14t']]}, 'stage1': {'resnet10t': '../d3/stage1/r10.safetensors'}})),
                                "metrics.json: stage1 of resnet10t names ../d3/stage1/r10.safetensors, which lies outside"),
    'stage-1 weights edited to a file of the machine': (lambda t: demo_folder(t, json.dumps(
        {'settings': {'dataset': 'digits', 'n_train': 20, 'n_val': 10, 'n_test': 10, 'img_size': 16,
                      'groups': [['resnet10t', 'resnet14t']]}, 'stage1': {'resnet10t': '/etc/passwd'}})),
                                "metrics.json: stage1 of resnet10t names /etc/passwd, which lies outside"),
}


@pytest.mark.parametrize('case', EXPLORER, ids=lambda c: c.replace(' ', '-'))
def test_the_explorer_refuses_a_folder_it_cannot_show_in_one_line(case, tmp_path):
    from kt_nb.classification.explorer import explore_demo
    make, phrase = EXPLORER[case]
    folder = make(tmp_path)
    before = files_below(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        explore_demo(folder)
    message = str(caught.value)
    assert phrase in message and '\n' not in message.strip(), message
    assert files_below(tmp_path) == before


def test_the_explorer_refuses_a_ledger_of_other_data(tmp_path):
    from kt_nb.classification.explorer import check_ledger_samples
    data = load_dataset('digits', n_train=20, n_val=5, n_test=5)['train']
    names = [data.sample_id(i) for i in range(len(data))]
    check_ledger_samples(ledger_of(tmp_path, names), data)   # its own data: accepted
    with pytest.raises(ValueError, match='names 21 training samples, but the data has 20'):
        check_ledger_samples(ledger_of(tmp_path, names + ['digits#9999']), data)   # a file added since
    with pytest.raises(ValueError, match='its sample 3 is digits#9999'):
        check_ledger_samples(ledger_of(tmp_path, names[:3] + ['digits#9999'] + names[4:]), data)   # one replaced
    import pandas as pd
    frame = pd.DataFrame({'sample': [0, 1], 'sample_id': ['x.png', names[1]], 'epoch': 0})
    with pytest.raises(ValueError, match='its sample 0 is x.png'):
        check_ledger_samples(frame, data)   # a ledger handed over as a frame
