"""Which pairs gain, end to end on a tiny zoo: a demo of every pair of four small models on digits (one seed), the
verdict computed on it, and `kt-nb screen` ranking a zoo's pairs with the fit kt_nb ships and with a fit on the demo."""
import itertools
import json
import sys
from pathlib import Path

import pytest

from kt_nb.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_hostile_runs import listing, refused   # noqa: E402  one message, nothing written

ZOO = ['test_resnet:scratch', 'test_efficientnet:scratch', 'test_vit:scratch', 'test_byobnet:scratch']
SMALL = ['--data', 'digits', '--set', 'n_train=128', 'n_val=64', 'n_test=128', 'img_size=16', 'stage1_epochs=1',
         'epochs=1', 'seeds=1']


@pytest.fixture(scope='module')
def demo(tmp_path_factory) -> Path:
    "Every pair of the zoo trained together under bikd and alone (the control): six measured pairs."
    out = tmp_path_factory.mktemp('zoo')/'demo'
    groups = ['+'.join(p) for p in itertools.combinations(ZOO, 2)]
    assert main(['demo', *SMALL, '--methods', 'bikd', '--groups', *groups, '--out', str(out)]) == 0
    return out


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    "Screening predictions and the zoo's stage 1 in this test's own cache; each case in its own folder."
    monkeypatch.setenv('KT_NB_CACHE', str(tmp_path/'cache'))
    monkeypatch.chdir(tmp_path)


def test_the_verdict_is_computed_on_a_finished_demo(demo):
    "Features of each model in each pair from its stage 1, joined to its measured gain; the verdict file's keys."
    from kt_nb.classification.gains import FEATURES, gains_verdict, sweep_table
    table = sweep_table(demo)
    assert len(table) == 12 and set(table.method) == {'bikd'} and table[list(FEATURES)].notna().all().all()
    verdict, fit = gains_verdict(table, n=200)
    assert {'pairs', 'seeds', 'methods', 'spearman', 'naive', 'sign_agreement', 'beyond_noise'} <= set(verdict)
    assert len(verdict['pairs']) == 6 and verdict['spearman']['cross_validation'] == 'leave one pair out'
    assert -1 <= verdict['spearman']['rho'] <= 1 and set(verdict['naive']) == {'accuracy_gap', 'params'}
    assert fit.methods['bikd']['pairs'] == 6
    json.dumps(verdict)   # as results/pair_gains.json holds it


def test_screen_ranks_a_zoo_with_a_fit_on_the_users_sweep(demo, capsys):
    "`kt-nb screen --fit`: every pair of a new zoo ranked by predicted gain; the sweep it fits on is only read."
    before = listing(demo)
    models = ['test_resnet:scratch', 'test_efficientnet:scratch', 'test_vit:scratch']
    assert main(['screen', '--fit', str(demo), '--data', 'digits', '--quick', '--models', *models]) == 0
    out = capsys.readouterr().out
    for a, b in itertools.combinations(sorted(models), 2): assert f'{a} & {b}' in out, out
    assert "Spearman's rho" in out and 'leave one pair out' in ' '.join(out.split())
    assert listing(demo) == before


def test_screen_ranks_a_zoo_with_the_fit_kt_nb_ships(capsys):
    "`kt-nb screen` with the committed fit: the pairs ranked, each model's predicted gain under bikd and dml."
    from kt_nb.classification.gains import load_fit
    fit, figures = load_fit()
    assert set(fit.methods) == {'bikd', 'dml'} and figures['spearman']['cross_validation'] == 'leave one pair out'
    models = ['test_resnet:scratch', 'test_efficientnet:scratch']
    assert main(['screen', '--data', 'digits', '--quick', '--models', *models]) == 0
    out = capsys.readouterr().out
    assert 'test_efficientnet:scratch & test_resnet:scratch' in out and ' bikd ' in out and ' dml' in out, out
    assert f"rho {figures['spearman']['rho']:.2f}" in out


@pytest.mark.parametrize('argv, message', [
    (['--models', 'test_resnet:scratch'], 'name 2 or more models'),
    (['--models', 'test_resnet:scratch', 'test_vit:scratch', '--fit', 'nowhere'], 'is not a finished sweep or run'),
])
def test_bad_screens_are_refused_in_one_line(tmp_path, capsys, argv, message):
    said = refused(capsys, tmp_path, 'screen', '--data', 'digits', '--quick', *argv)
    assert message in said, said
