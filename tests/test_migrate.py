"""scripts/migrate.py brings a run or sweep folder of an older kt_nb up to date; kt_nb itself reads only its current
formats and refuses an older one in one line that names the script."""
import importlib.util
import json
from pathlib import Path

import pytest

from kt_nb.classification.experiment import ClassificationConfig, classification_experiment
from kt_nb.experiment.folders import FolderInUse, claim_folder
from kt_nb.experiment.runner import RUNNER_FILES, experiment_identity, run_experiment
from kt_nb.experiment.settings import added_settings, growing
from kt_nb.saliency.experiment import SALIENCY_METRICS, SaliencyConfig, temporal_table

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('migrate', ROOT/'scripts'/'migrate.py')
migrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(migrate)


def older(identity: dict, config) -> dict:
    "What an older kt_nb recorded for the same run: no setting added since."
    return {k: v for k, v in identity.items() if k not in added_settings(config)}


def test_settings_added_since_have_the_value_older_runs_ran_at():
    assert added_settings(ClassificationConfig) == {'weight_decay': 1e-5}


def test_an_old_run_folder_is_refused_naming_the_script_then_migrated(tmp_path, capsys):
    cfg = ClassificationConfig.quick(dataset='digits', groups=[['test_resnet:scratch', 'test_vit:scratch']],
                                     img_size=16)
    out = tmp_path/'demo'; out.mkdir()
    identity = experiment_identity(cfg)
    (out/'run.json').write_text(json.dumps(older(identity, ClassificationConfig)))
    with pytest.raises(FolderInUse, match=r'older kt_nb.*weight_decay.*python scripts/migrate.py'):
        run_experiment(classification_experiment, cfg, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ['run.json']   # refused before any work
    assert migrate.main([str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"migrated {out/'run.json'}"
    assert json.loads((out/'run.json').read_text()) == json.loads(json.dumps(identity))
    assert claim_folder(out, identity, grows=growing(cfg), alongside=RUNNER_FILES, record=False) == 'same'
    assert migrate.main([str(out)]) == 0                                 # twice: nothing left to do
    assert capsys.readouterr().out.strip() == f"{out}: already current"


def test_a_sweep_folder_and_a_results_file_are_migrated(tmp_path, capsys):
    cfg = SaliencyConfig.quick()
    sweep = tmp_path/'sweep'
    point = sweep/'seed0__bikd'; point.mkdir(parents=True)
    hooks = 'kt_nb.saliency.experiment:saliency_experiment'
    (sweep/'run.json').write_text(json.dumps({'hooks': hooks, 'points': [point.name]}))
    subset = experiment_identity(cfg, arms=['bikd:task_loss'], seeds=[0])
    (point/'run.json').write_text(json.dumps(older(subset, SaliencyConfig)))
    scores = dict.fromkeys(SALIENCY_METRICS, .5)
    rows = [{'stage': 'alone', 'method': 'alone', 'model': 'a', 'seed': 0, **scores},
            {'stage': 'transfer', 'method': 'control', 'model': 'a', 'seed': 0, **scores}]
    (point/'metrics.json').write_text(json.dumps({'runs': rows}))
    with pytest.raises(ValueError, match='older kt_nb.*python scripts/migrate.py'):
        temporal_table({'runs': rows})
    assert migrate.main([str(sweep)]) == 0
    assert json.loads((point/'run.json').read_text()) == json.loads(json.dumps(subset))
    migrated = json.loads((point/'metrics.json').read_text())['runs']
    assert [r['method'] for r in migrated] == ['start', 'control'] and not any('stage' in r for r in migrated)
    assert temporal_table({'runs': migrated}).loc['a', 'cc'].startswith('0.500')
    assert json.loads((sweep/'run.json').read_text())['points'] == [point.name]   # the sweep's own record is current
    results = tmp_path/'video_saliency.json'
    results.write_text(json.dumps({'runs': rows}))
    assert migrate.main([str(results)]) == 0
    assert [r['method'] for r in json.loads(results.read_text())['runs']] == ['start', 'control']


def test_a_folder_without_a_run_is_refused(tmp_path, capsys):
    (tmp_path/'photos').mkdir()
    assert migrate.main([str(tmp_path/'photos')]) == 1
    assert 'holds no kt_nb run' in capsys.readouterr().err
