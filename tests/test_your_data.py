"A user's own images on disk, as a user brings them: through the learner, the demo command and the explorer."
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kt_nb.data.sets import Augment
from kt_nb.data.load import load_dataset
from kt_nb.engine.learner import JointLearner
from kt_nb.engine.predictions import accuracies
from kt_nb.engine.models import participant
from kt_nb.data.sources import write_image_folder

KT_NB = Path(sys.executable).parent / 'kt-nb'


def train_and_test(data, seed, model="test_byobnet", img_size=16, epochs=2, lr=3e-3, n_classes=10):
    "Test accuracy of one model fine-tuned alone, the same way whatever the data's source (timm's test_* from scratch)."
    torch.manual_seed(seed)
    scratch = model.startswith('test_')
    learner = JointLearner([participant(model, n_classes, pretrained=not scratch, img_size=img_size)], data['train'],
                           method="control", epochs=epochs, lr=lr, batch_size=64, augment=Augment(shift=2, flip=False),
                           seed=seed, progress=False)
    learner.fit()
    return learner.predict(data['test'])


def test_a_table_of_files_trains_exactly_as_memory(tmp_path):
    "The digits written as PNG files with a table in their own order: the same batches, so the same predictions to the bit."
    memory = load_dataset('digits', n_train=256, n_val=64, n_test=128)
    write_image_folder(memory, tmp_path/'digits', table=True)
    files = load_dataset(tmp_path/'digits'/'labels.csv', img_size=8, crop_pct=1.0, augment=False)   # decoded at their own 8 px
    assert {k: len(v) for k, v in files.items()} == {k: len(v) for k, v in memory.items()}
    x, y, _ = files['train'][5]
    assert torch.equal(x, memory['train'][5][0].expand(3, -1, -1)) and int(y) == int(memory['train'][5][1])
    a, b = train_and_test(memory, seed=0), train_and_test(files, seed=0)
    assert a.drop(columns='sample').equals(b.drop(columns='sample')), (accuracies(a), accuracies(b))


def test_fashion_mnist_from_a_folder_matches_memory_within_the_seed_spread(tmp_path):
    "Fashion-MNIST exported to class folders (PNG): other sample order, same accuracy within the seed spread."
    memory = load_dataset('fashion_mnist', n_train=512, n_val=50, n_test=500)
    write_image_folder({'train': memory['train'], 'test': memory['test'], 'val': memory['val']}, tmp_path/'fm')
    files = load_dataset(tmp_path/'fm', img_size=28, crop_pct=1.0, augment=False)
    runs = {source: [accuracies(train_and_test(data, seed, 'tf_efficientnet_lite0', img_size=48, epochs=3))['tf_efficientnet_lite0']
                     for seed in range(3)] for source, data in (('memory', memory), ('folder', files))}
    spread = max(np.ptp(v) for v in runs.values())
    gap = abs(np.mean(runs['memory']) - np.mean(runs['folder']))
    print(f"test accuracy by seed: {runs}; gap of means {gap:.4f}, seed spread {spread:.4f}")
    assert min(min(v) for v in runs.values()) > 0.6, runs   # both really learned (chance is 0.1)
    assert gap <= spread, runs


def awkward_folder(root: Path) -> Path:
    "Three classes of real photos (scikit-image) as JPEG and PNG in several modes and sizes, some smaller than the crop."
    from skimage import data as photos
    pictures = {'cat': photos.chelsea(), 'coffee': photos.coffee(), 'rocket': photos.rocket()}
    rng = np.random.default_rng(0)
    for split, count in (('train', 30), ('val', 8)):
        for name, photo in pictures.items():
            folder = root/split/name
            folder.mkdir(parents=True)
            for i in range(count):
                h, w = int(rng.integers(20, 90)), int(rng.integers(20, 90))
                top, left = int(rng.integers(0, photo.shape[0] - h)), int(rng.integers(0, photo.shape[1] - w))
                image = Image.fromarray(photo[top:top + h, left:left + w]).resize((int(rng.integers(12, 70)), int(rng.integers(12, 70))))
                kind = i % 5
                if kind == 0: image.save(folder/f'{i}.jpg', quality=85)
                elif kind == 1: image.convert('L').save(folder/f'{i}.png')
                elif kind == 2: image.convert('RGBA').save(folder/f'{i}.png')
                elif kind == 3: image.convert('P').save(folder/f'{i}.png')
                else: Image.fromarray((np.asarray(image.convert('L'), np.uint16) * 257)).save(folder/f'{i}.png')   # 16-bit
    (root/'train'/'cat'/'notes.txt').write_text('not an image, passed over with a warning')
    return root


def run(*args):
    return subprocess.run([str(KT_NB), *map(str, args)], capture_output=True, text=True, timeout=600)


def said(result) -> str:
    "What the command wrote to stderr, as one line: the CLI wraps its messages at 120 columns."
    return ' '.join(result.stderr.split())


def test_demo_on_a_folder_then_the_explorer_on_its_ledger(tmp_path):
    folder = awkward_folder(tmp_path/'photos')
    corrupt = folder/'train'/'coffee'/'0.jpg'
    corrupt.write_bytes(corrupt.read_bytes()[:300])   # a truncated JPEG
    stopped = run('demo', '--quick', '--data', folder, '--groups', 'test_byobnet:scratch+test_vit:scratch', '--out', tmp_path/'stopped')
    assert stopped.returncode == 1, stopped.stderr
    assert 'train/coffee/0.jpg' in said(stopped) and "on_error='skip'" in said(stopped), stopped.stderr

    out = tmp_path/'demo'
    result = run('demo', '--quick', '--data', folder, '--groups', 'test_byobnet:scratch+test_vit:scratch', '--img-size', '32',
                 '--workers', '2', '--on-error', 'skip', '--out', out)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out/'metrics.json').read_text())
    assert metrics['data'] == 'photos' and metrics['sizes'] == {'train': 80, 'val': 9, 'test': 24}, metrics['sizes']
    assert metrics['unreadable'] == {'train': ['train/coffee/0.jpg']}, metrics.get('unreadable')
    assert any('passed over 1 file' in note for note in metrics['notes']), metrics['notes']
    run_folder = next((out/'runs').glob('*bikd-seed0'))
    assert (run_folder/'unreadable.txt').read_text().split() == ['train/coffee/0.jpg']   # left out, and said so

    from kt_nb.classification.explorer import explore_demo   # what the README tells a user to type after the demo
    explorer = explore_demo(out)
    train = explorer.ledger_data
    explorer.source.value = 'ledger'
    shown = [t for t in explorer.tiles if t.layout.display != 'none']
    assert len(shown) == explorer.page   # 80 images taught, one page shown
    picture = Image.open(io.BytesIO(shown[0].children[0].value))
    assert picture.size == (192, 192)   # the file's thumbnail (96 px), not a 32 px training crop
    first = int(explorer._shown[0])
    assert Path(train.sample_id(first)).name in shown[0].children[1].value   # the file's name under its picture
    explorer.open_sample(first)
    assert train.sample_id(first) in explorer.detail.value and 'Role history' in explorer.detail.value

    # a demo folder written before stage 1 was kept per setting: weights in out/stage1/<spec>, no 'stage1' in metrics.json
    metrics = json.loads((out/'metrics.json').read_text())
    for spec, path in metrics.pop('stage1').items(): (out/path).rename(out/'stage1'/f"{spec.replace(':', '_')}.safetensors")
    (out/'metrics.json').write_text(json.dumps(metrics))
    older = explore_demo(out)
    assert older.screening.names == explorer.screening.names


def test_user_errors_name_the_file_or_the_folder(tmp_path):
    missing = run('demo', '--quick', '--data', tmp_path/'nowhere', '--out', tmp_path/'a')
    assert missing.returncode == 1 and 'no data set' in said(missing) and 'nowhere' in said(missing)
    folder = awkward_folder(tmp_path/'photos')
    (folder/'val'/'dog').mkdir()
    (folder/'val'/'dog'/'1.png').write_bytes((folder/'val'/'cat'/'1.png').read_bytes())
    stray = run('demo', '--quick', '--data', folder, '--out', tmp_path/'b')
    assert stray.returncode == 1 and "['dog']" in said(stray) and 'training split lacks' in said(stray)
    assert not (tmp_path/'b').exists()   # refused before any work
    (folder/'val'/'dog'/'1.png').unlink(); (folder/'val'/'dog').rmdir()
    three = load_dataset(folder, img_size=32)
    with pytest.raises(ValueError, match="participant 'resnet10t': a 3-class model must output"):
        JointLearner([participant('resnet10t', 5, pretrained=False, img_size=32)], three['train'], method='control', progress=False)


def test_bench_loader_on_a_folder(tmp_path):
    folder = awkward_folder(tmp_path/'photos')
    result = run('bench-loader', folder, '--img-size', '32', '--batch-size', '8', '--workers', '0', '--batches', '2', '--passes', '1')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'timm create_loader' in result.stdout and 'kt_nb (FileSet, workers)' in result.stdout and 'vs timm' in result.stdout
    missing = run('bench-loader', tmp_path)
    assert missing.returncode == 1 and 'no train/ folder' in said(missing)


def test_the_papers_imagenet_sweep_on_a_tiny_imagenet_folder(tmp_path):
    "sweeps/paper_imagenet.yaml as written, on a folder in ImageNet layout; only the models are swapped for tiny scratch ones."
    import yaml
    folder = awkward_folder(tmp_path/'imagenet')
    (folder/'train'/'cat'/'notes.txt').unlink()
    spec = Path(__file__).resolve().parents[1]/'sweeps'/'paper_imagenet.yaml'
    dry = run('sweep', spec, '--data', folder, '--dry-run', '--out', tmp_path/'never')
    assert dry.returncode == 0, dry.stderr
    assert '3 points' in dry.stdout and 'detach_teacher=False' in dry.stdout and str(folder) in dry.stdout, dry.stdout
    assert not (tmp_path/'never').exists()
    tiny = yaml.safe_load(spec.read_text())
    tiny['base'].update(img_size=32, epochs=1, batch_size=16, workers=0, groups=[['test_vit:scratch', 'test_efficientnet:scratch']])
    tiny['threads'] = 1
    (tmp_path/'tiny.yaml').write_text(yaml.safe_dump(tiny))
    result = run('sweep', tmp_path/'tiny.yaml', '--data', folder, '--workers', '2', '--out', tmp_path/'sweep')
    assert result.returncode == 0, result.stderr[-3000:]
    points = [json.loads(p.read_text()) for p in (tmp_path/'sweep').glob('*/metrics.json')]
    assert len(points) == 3
    assert {p['settings']['detach_teacher'] for p in points if p['arms'] == ['bikd:gt_confidence']} == {True, False}
    assert all(p['settings']['lr'] == 1e-6 and p['settings']['epochs'] == 1 and p['settings']['dataset'] == str(folder) for p in points)
    assert 'bikd:gt_confidence detach_teacher=False' in result.stdout and 'bikd:gt_confidence detach_teacher=True' in result.stdout
