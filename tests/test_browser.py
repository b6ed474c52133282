"""The explorer as a user meets it: JupyterLab headless, Debian's Chromium through Playwright, real clicks.

Builds a small notebook (digits, three small models, a two-epoch transfer run with a ledger),
runs all its cells in the browser, then picks another pair (in a dropdown, then by clicking a
heat map cell), filters a class and opens samples, checking after each step that the page
shows what it should. Screenshots of every step go to test-artifacts/browser/.
"""
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/'test-artifacts'/'browser'
CHROMIUM = os.environ.get('KT_NB_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
         '--disable-background-networking', '--disable-component-update', '--disable-sync']

sync_api = pytest.importorskip('playwright.sync_api', reason="the playwright package is missing: `make install` installs it")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium when run as root "
                "(or set KT_NB_CHROMIUM to a Chromium binary)", allow_module_level=True)

SETUP = '''\
import torch
torch.set_num_threads(1)
from pathlib import Path
from kt_nb.data.load import load_dataset
from kt_nb.classification.experiment import ClassificationConfig
from kt_nb.engine.learner import JointLearner
from kt_nb.classification.screening import screen, train_zoo, zoo_participants
from kt_nb.classification.explorer import explore
work = Path({work!r})
torch.manual_seed(0)
cfg = ClassificationConfig(dataset='digits', n_train=300, n_val=50, n_test=200, img_size=32, stage1_epochs=6)
digits = load_dataset('digits', n_train=300, n_val=50, n_test=200)
zoo = train_zoo(['resnet10t:scratch', 'mobilenetv3_small_050:scratch', 'resnet14t:scratch'], cfg, work/'zoo')
scr = screen(zoo_participants(zoo, cfg), digits['test'], work/'cache')
pair = ['resnet10t:scratch', 'mobilenetv3_small_050:scratch']
learner = JointLearner([p for p in zoo_participants(zoo, cfg) if p.name in pair], digits['train'],
                       epochs=2, lr=1e-3, out=work/'run', progress=False)
learner.fit()
print('setup done', scr.accuracy().round(3).to_dict())'''
SHOW = '''\
ex = explore(scr, work/'run'/'ledger', digits['train'], learner.predict(digits['test']))
ex'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _write_settings(folder: Path):
    "JupyterLab user settings: no news, no update checks, no autosave."
    settings = {'@jupyterlab/apputils-extension/notification.jupyterlab-settings': {'fetchNews': 'false', 'checkForUpdates': False},
                '@jupyterlab/docmanager-extension/plugin.jupyterlab-settings': {'autosave': False}}
    for name, value in settings.items():
        (folder/name).parent.mkdir(parents=True, exist_ok=True)
        (folder/name).write_text(json.dumps(value))


@contextlib.contextmanager
def serve_notebook(tmp_path: Path, cells: list[str]):
    "A JupyterLab server on 127.0.0.1 with a token, serving a folder that holds a notebook of `cells`; yields its URL."
    nb = nbformat.v4.new_notebook()
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    served = tmp_path/'served'
    served.mkdir()
    nbformat.write(nb, served/'explorer.ipynb')
    settings, home = tmp_path/'settings', tmp_path/'home'
    _write_settings(settings)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep),
           'JUPYTER_CONFIG_DIR': str(home/'config'), 'JUPYTER_RUNTIME_DIR': str(home/'runtime'), 'IPYTHONDIR': str(home/'ipython'),
           'OMP_NUM_THREADS': '1'}
    log = open(tmp_path/'lab.log', 'w')
    server = subprocess.Popen(
        [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
         f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={served}', '--ServerApp.terminals_enabled=False',
         '--LabApp.extension_manager=readonly', *(['--allow-root'] if os.geteuid() == 0 else []),
         f'--LabApp.user_settings_dir={settings}', f'--LabApp.workspaces_dir={home/"workspaces"}',
         '--LabApp.expose_app_in_browser=True'],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=served)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=2)
                break
            except OSError:
                if server.poll() is not None: break
                time.sleep(0.5)
        else: pytest.fail("JupyterLab did not answer within 60 s")
        if server.poll() is not None: pytest.fail(f"JupyterLab exited: {(tmp_path/'lab.log').read_text()[-2000:]}")
        yield f'{base}/lab/tree/explorer.ipynb?token={token}'
    finally:
        server.terminate()
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired: server.kill()
        log.close()


@pytest.fixture
def lab(tmp_path):
    with serve_notebook(tmp_path, [SETUP.format(work=str(tmp_path/'work')), SHOW]) as url: yield url


def open_notebook(browser, url: str):
    "A page with the served notebook open and its kernel session started."
    page = browser.new_page(viewport={'width': 1500, 'height': 1300})
    page.goto(url, timeout=60_000)
    page.wait_for_selector('.jp-Notebook', timeout=60_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=60_000)
    return page


PLOT_DATA = "sel => { const p = document.querySelector(sel + ' .js-plotly-plot'); return p && p.data ? p.data.map(t => t.name) : null; }"
PLOT_TITLE = "sel => { const t = document.querySelector(sel + ' .js-plotly-plot .gtitle'); return t ? t.textContent : null; }"
SHAPES = ("sel => { const p = document.querySelector(sel + ' .js-plotly-plot');"
          " return p && p.layout ? (p.layout.shapes || []).map(s => [s.x0, s.y0]) : null; }")
CELL = ("([row, col]) => { const p = document.querySelector('.kt-heatmap .js-plotly-plot'), fl = p._fullLayout;"
        " const box = p.getBoundingClientRect(), x = p.data[0].x, y = p.data[0].y;"
        " return [box.left + fl.xaxis._offset + fl.xaxis.l2p(x.indexOf(col)), box.top + fl.yaxis._offset + fl.yaxis.l2p(y.indexOf(row))]; }")
VISIBLE = "sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null).map(e => e.textContent.trim())"


def test_explorer_in_chromium(lab):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob('*.png'): old.unlink()
    errors, timings = [], {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = open_notebook(browser, lab)
        page.on('pageerror', lambda e: errors.append(str(e)))

        def shot(name):
            page.screenshot(path=str(ARTIFACTS/f'{name}.png'), full_page=True)

        def step(name, action, wait, timeout=30_000, focus=None):
            started = time.perf_counter()
            action()
            expression, arg = (wait + (None,))[:2] if isinstance(wait, tuple) else (wait, None)
            page.wait_for_function(expression, arg=arg, timeout=timeout)
            timings[name] = time.perf_counter() - started
            if focus: page.locator(focus).first.evaluate("e => e.scrollIntoView({block: 'center'})")
            shot(name)

        # 1. run all cells; the explorer appears with the ledger's pair chosen
        step('01-run-all', lambda: page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')"),
             ("() => { const p = document.querySelector('.kt-shares .js-plotly-plot'); return p && p.data && p.data.length > 0; }",),
             timeout=150_000)
        page.locator('.kt-explorer').scroll_into_view_if_needed()
        shot('01-run-all')
        assert 'setup done' in ' '.join(page.locator('.jp-OutputArea-output').all_inner_texts())
        first_title = page.evaluate(PLOT_TITLE, '.kt-shares')
        assert 'resnet10t:scratch + mobilenetv3_small_050:scratch' in first_title, first_title
        assert set(page.evaluate(PLOT_DATA, '.kt-shares')) <= {'resnet10t:scratch', 'mobilenetv3_small_050:scratch'}
        first_shapes = page.evaluate(SHAPES, '.kt-heatmap')
        assert len(first_shapes) == 2, first_shapes
        total = int(page.locator('.kt-count .kt-n').inner_text().replace(',', ''))
        assert total == 200, total            # every screened test image, before any filter
        assert page.locator('.kt-sample').filter(has=page.locator('img')).count() >= 24

        # 2. choose another pair in the dropdown: the share plot, the heat map outline and the summary follow
        step('02-other-pair', lambda: page.select_option('.kt-model-b select', label='resnet14t:scratch'),
             ("() => { const t = document.querySelector('.kt-shares .js-plotly-plot .gtitle');"
              " return t && t.textContent.includes('resnet14t'); }",))
        names = page.evaluate(PLOT_DATA, '.kt-shares')
        assert names and set(names) <= {'resnet10t:scratch', 'resnet14t:scratch'}, names
        assert 'resnet14t:scratch' in names or 'resnet10t:scratch' in names
        shapes = page.evaluate(SHAPES, '.kt-heatmap')
        assert len(shapes) == 2 and sorted(shapes) != sorted(first_shapes), (first_shapes, shapes)
        assert 'resnet14t:scratch' in page.locator('.kt-summary').inner_text()
        assert 'mobilenetv3_small_050' not in page.locator('.kt-summary').inner_text()

        # 3. click a heat map cell: its row and column become the pair, dropdowns included
        page.locator('.kt-heatmap').first.evaluate("e => e.scrollIntoView({block: 'center'})")
        x, y = page.evaluate(CELL, ['resnet14t:scratch', 'mobilenetv3_small_050:scratch'])
        step('03-heatmap-click', lambda: page.mouse.click(x, y),
             ("() => { const t = document.querySelector('.kt-shares .js-plotly-plot .gtitle');"
              " return t && t.textContent.includes('resnet14t:scratch + mobilenetv3_small_050:scratch'); }",))
        assert page.eval_on_selector('.kt-model-a select', 'e => e.value') == 'resnet14t:scratch'
        assert page.eval_on_selector('.kt-model-b select', 'e => e.value') == 'mobilenetv3_small_050:scratch'
        assert 'resnet10t' not in page.locator('.kt-summary').inner_text()

        # 4. filter one class: the count drops and every visible label is that class
        step('04-class-3', lambda: page.select_option('.kt-class select', label='3'),
             ("n => document.querySelector('.kt-count .kt-n').textContent.replace(',', '') !== String(n)", total), focus='.kt-sample')
        n3 = int(page.locator('.kt-count .kt-n').inner_text().replace(',', ''))
        labels = page.evaluate(VISIBLE, '.kt-label')
        assert 0 < n3 < total, n3
        assert labels == ['3'] * min(n3, 24), labels

        # 5. open the first sample: its index and its scores appear
        button = page.locator('.kt-open').first
        sample = button.inner_text().split('#')[1].strip()
        step('05-open-sample', lambda: button.click(),
             ("s => { const t = document.querySelector('.kt-detail .kt-detail-title'); return t && t.textContent === 'sample #' + s; }", sample),
             focus='.kt-detail table')
        detail = page.locator('.kt-detail').inner_text()
        assert 'Scores before transfer' in detail and 'resnet14t:scratch' in detail, detail

        # 6. the run's training samples: open one and read its role history, one row per epoch
        step('06-ledger-samples', lambda: page.locator('.kt-source button', has_text='ledger').click(),
             "() => document.querySelector('.kt-count').textContent.includes('training samples')", focus='.kt-sample')
        labels = page.evaluate(VISIBLE, '.kt-label')
        assert labels and set(labels) == {'3'}, labels           # the class filter still holds
        button = page.locator('.kt-open').first
        sample = button.inner_text().split('#')[1].strip()
        step('07-role-history', lambda: button.click(),
             ("s => { const t = document.querySelector('.kt-detail .kt-detail-title'); return t && t.textContent === 'sample #' + s"
              " && document.querySelector('.kt-history-table'); }", sample), focus='.kt-detail')
        rows = page.locator('.kt-history-table tbody tr').count()
        assert rows == 2, rows                                     # two epochs in the run
        assert '(2 epochs:' in page.locator('.kt-detail').inner_text()

        errors += page.evaluate(VISIBLE, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        browser.close()
    (ARTIFACTS/'timings.json').write_text(json.dumps({k: round(v, 3) for k, v in timings.items()}, indent=1))
    assert not [e for e in errors if 'Error' in e or 'Traceback' in e], errors


CLIP_SETUP = '''\
import torch
torch.set_num_threads(1)
from kt_nb.saliency.data import synthetic_splits
from kt_nb.engine.learner import JointLearner
from kt_nb.saliency.task import Saliency
from kt_nb.saliency.models import saliency_participant
from kt_nb.saliency.explorer import explore_saliency
torch.manual_seed(0)
clips = synthetic_splits(6, 0, 1, frames_per_video=6, clip_length=4, size=32)
pair = [saliency_participant('tf_efficientnet_lite0', 'conv3d', img_size=48), saliency_participant('tf_efficientnet_lite1', 'attention', img_size=48)]
run = JointLearner(pair, clips['train'], method='bikd:task_loss', task=Saliency(), epochs=2, lr=3e-3, batch_size=9, progress=False)
run.fit()
print('setup done', len(clips['train']), 'clips')'''
CLIP_SHOW = "explore_saliency(pair, clips['train'], run.ledger.to_frame())"
LEGEND = "() => { const l = document.querySelector('.kt-clip-explorer .widget-html-content'); return l ? l.textContent : null; }"
PICTURE = "() => { const i = document.querySelector('.kt-clip-explorer img'); return i && i.complete && i.naturalWidth > 0 ? i.src : null; }"


def test_clip_explorer_in_chromium(tmp_path):
    "The video saliency explorer: a clip's maps and who taught it; moving the slider shows the next clip."
    artifacts = ROOT/'test-artifacts'/'browser-clips'
    artifacts.mkdir(parents=True, exist_ok=True)
    errors = []
    with serve_notebook(tmp_path, [CLIP_SETUP, CLIP_SHOW]) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = open_notebook(browser, url)
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(f"() => ({PICTURE})() && ({LEGEND})()", timeout=150_000)
        page.locator('.kt-clip-explorer').scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts/'01-clip-0.png'), full_page=True)
        legend, picture = page.evaluate(LEGEND), page.evaluate(PICTURE)
        assert legend.startswith('clip 0 (0: tf_efficientnet_lite0-conv3d, 1: tf_efficientnet_lite1-attention)'), legend
        assert 'teaches it now' in legend and 'epoch 0' in legend and 'epoch 1' in legend, legend   # two epochs in the ledger

        page.locator('.kt-clip-explorer .noUi-handle').focus()
        page.keyboard.press('ArrowRight')
        page.wait_for_function(f"() => ({LEGEND})() && ({LEGEND})().startsWith('clip 1 ')", timeout=30_000)
        page.wait_for_function(f"old => ({PICTURE})() && ({PICTURE})() !== old", arg=picture, timeout=30_000)
        page.screenshot(path=str(artifacts/'02-clip-1.png'), full_page=True)
        errors += page.evaluate(VISIBLE, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        browser.close()
    assert not [e for e in errors if 'Error' in e or 'Traceback' in e], errors
