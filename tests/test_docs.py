"""The documentation site as a reader meets it, and the README's links.

`docs/build.py` builds the site from a fresh copy of the repository (its tracked and new files, nothing
ignored), with no network; Debian's Chromium then opens the landing page, an API page, the explorer
tutorial and the lab book, served from 127.0.0.1. Every request must stay on the machine, the console must
stay free of errors, and every plotly figure must draw (an SVG holding its traces).
"""
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ['index.html', 'api/06_engine_learner.html', 'api/08b_classification_explorer.html', 'results/lab_book.html']


def repository_copy(to: Path) -> Path:
    "The files a fresh clone has (tracked, or new and not ignored), copied to `to`."
    names = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split('\0')
    for name in filter(None, names):
        if (ROOT/name).is_file():
            (to/name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT/name, to/name)
    return to


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    copy = repository_copy(tmp_path_factory.mktemp('clone'))
    run = subprocess.run([sys.executable, 'docs/build.py'], cwd=copy, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'WARNING' not in run.stderr, run.stderr
    return copy/'_site'/'html'


def test_site_pages_exist(site):
    "Every numbered notebook is an API page, and the reference pages are written from the code."
    for nb in (ROOT/'nbs').glob('[0-9]*.ipynb'): assert (site/'api'/f'{nb.stem}.html').exists(), nb.stem
    cli = (site/'reference'/'cli.html').read_text()
    for option in ['--groups', '--set', '--workers', '--dry-run', '--report']: assert option in cli, option
    from kt_nb.classification.experiment import DemoConfig
    from dataclasses import fields
    settings = (site/'reference'/'settings.html').read_text()
    for f in fields(DemoConfig):
        if 'doc' in f.metadata: assert f'<span class="pre">{f.name}</span>' in settings, f.name
    results = (site/'results'/'files.html').read_text()
    assert 'results/demo.json' in results and 'results/three.json' in results


def test_readme_links_exist():
    "Every relative link and image of the README names a file of the repository."
    links = re.findall(r'\]\(([^)#\s]+)', (ROOT/'README.md').read_text())
    local = [l for l in links if not re.match(r'[a-z]+:', l)]
    assert len(local) >= 10, local
    for link in local: assert (ROOT/link).exists(), link


@pytest.fixture(scope='module')
def served(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_port}'
    server.shutdown()


def test_site_in_chromium(served):
    from test_browser import CHROMIUM, FLAGS, sync_api   # skips, saying why, where there is no Chromium
    outside, errors = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        page.route('**/*', lambda route: route.continue_() if route.request.url.startswith(served)
                   or route.request.url.startswith('data:') else (outside.append(route.request.url), route.abort()))
        page.on('console', lambda m: m.type == 'error' and errors.append(m.text))
        page.on('pageerror', lambda e: errors.append(str(e)))
        drawn = {}
        for name in PAGES:
            page.goto(f'{served}/{name}', wait_until='load')
            page.wait_for_timeout(300)
            figures = page.eval_on_selector_all('.plotly-graph-div', '''divs => divs.map(d =>
                d.querySelectorAll('svg.main-svg').length > 0
                && d.querySelectorAll('.trace, .hm, .heatmaplayer image').length)''')
            drawn[name] = figures
            assert page.title(), name
        browser.close()
    assert not outside, outside
    assert not errors, errors
    assert drawn['api/08b_classification_explorer.html'] and drawn['results/lab_book.html'], drawn
    for name, figures in drawn.items(): assert all(figures), (name, figures)   # each figure drew its traces


def test_stored_outputs_load_nothing_from_the_internet():
    "Figures and snapshots stored in the notebooks draw with the page's own plotly.js: no script from a CDN."
    import json
    notebooks = [*ROOT.glob('nbs/*.ipynb'), *ROOT.glob('docs/**/*.ipynb'), *ROOT.glob('kt_nb/notebooks/*.ipynb'),
                 ROOT/'index.ipynb']
    outside = re.compile(r'<script[^>]*\ssrc="https?://|import "https?://')
    figures = 0
    for path in notebooks:
        for cell in json.loads(path.read_text())['cells']:
            for output in cell.get('outputs', []):
                html = ''.join(output.get('data', {}).get('text/html', ''))
                assert not outside.search(html), f'{path.name}: {outside.search(html).group()}'
                figures += html.count('Plotly.newPlot')
    assert figures >= 8, figures   # the explorer's, the tutorial's and the lab book's figures were looked at
