"""The documentation site as a reader meets it, and the README's links.

`docs/build.py` builds the site from a fresh copy of the repository (its tracked and new files, nothing
ignored), with no network, free of Sphinx warnings and in under a minute of two cores. An API page documents
every public definition of its module from the module itself (signature and the table of its docments), with the
import cells left out; the reference pages print every `--option` as it is typed. Debian's Chromium then opens
the landing page, API pages, the explorer tutorial and the lab book, served from 127.0.0.1. Every request must
stay on the machine, the console must stay free of errors, and every plotly figure must draw (an SVG holding its
traces).
"""
import functools
import html as html_lib
import http.server
import importlib
import inspect
import json
import re
import resource
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ['index.html', 'api/10_engine_losses.html', 'api/16_engine_learner.html', 'api/30_classification_explorer.html',
         'results/lab_book.html']
CPU_SECONDS = 120   # the build's processes together: under a minute on two cores, whatever else the machine runs


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
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run([sys.executable, 'docs/build.py'], cwd=copy, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'WARNING' not in run.stderr, run.stderr
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert cpu < CPU_SECONDS, f'the site took {cpu:.0f} s of CPU (at most {CPU_SECONDS}: a minute on two cores)'
    return copy/'_site'/'html'


def test_site_pages_exist(site):
    "Every numbered notebook is an API page, and the reference pages are written from the code."
    for nb in (ROOT/'nbs').glob('[0-9]*.ipynb'): assert (site/'api'/f'{nb.stem}.html').exists(), nb.stem
    cli = (site/'reference'/'cli.html').read_text()
    for option in ['--groups', '--set', '--workers', '--dry-run', '--report']: assert option in cli, option
    from kt_nb.classification.experiment import ClassificationConfig
    from dataclasses import fields
    settings = (site/'reference'/'settings.html').read_text()
    for f in fields(ClassificationConfig):
        if 'doc' in f.metadata: assert f'<span class="pre">{f.name}</span>' in settings, f.name
    results = (site/'results'/'files.html').read_text()
    assert 'results/demo.json' in results and 'results/three.json' in results


def text_of(html: str) -> str:
    "What a reader sees of some HTML: its text without tags (code spans and highlighted code joined again)."
    return html_lib.unescape(re.sub(r'<[^>]+>', '', html))


def test_options_printed_as_typed(site):
    "`--option` stays two hyphens: no en dash (Sphinx's smartquotes) before an option's name, anywhere on the site."
    cli = text_of((site/'reference'/'cli.html').read_text())
    assert '--groups' in cli and '--set' in cli
    pages = sorted(site.rglob('*.html'))
    assert len(pages) > 50 and site/'reference'/'settings.html' in pages
    for page in pages:   # the reference, and prose that names an option without backticks (`45_cli`'s "(--quick")
        dashed = re.findall(r'\S*[\u2013\u2014]-?[a-z][\w-]*', text_of(page.read_text()))
        assert not dashed, (page.relative_to(site), dashed)


def module_of(notebook: Path):
    "The module a notebook exports, imported (None for a notebook that exports nothing)."
    m = re.search(r'#\|\s*default_exp\s+([\w.]+)', notebook.read_text())
    return importlib.import_module(f'kt_nb.{m.group(1)}') if m else None


def test_api_pages_document_every_public_definition(site):
    """Each public function and class of a module has its section on its notebook's page; the pages leave the import
    cells out; a section holds the signature and the table of the parameters the code documents."""
    checked = 0
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        module = module_of(nb)
        if module is None: continue
        page = (site/'api'/f'{nb.stem}.html').read_text()
        sections = r'<section class="kt-def"[^>]*>\s*(?:<span[^>]*></span>)?<h\d>(.*?)<a'
        headings = {text_of(h) for h in re.findall(sections, page)}
        for name in getattr(module, '__all__', []):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != module.__name__: continue
            assert name in headings, f'{nb.stem}: no section documents {name}'
            checked += 1
        for imports in ['from fastcore.test import', 'from __future__ import annotations']:
            assert imports not in text_of(page), (nb.stem, imports)
    assert checked > 100, checked

    from fastcore.docments import docments
    from kt_nb.engine.losses import joint_loss
    losses = (site/'api'/'10_engine_losses.html').read_text()
    section = losses[losses.index('<section class="kt-def" id="joint-loss">'):]
    section = section[:section.index('</section>')]
    assert 'kt-signature' in section and 'def joint_loss(' in text_of(section)
    rows = {}
    for row in re.findall(r'<tr[^>]*>(.*?)</tr>', section, flags=re.S):
        cells = [text_of(c).strip() for c in re.findall(r'<td[^>]*>(.*?)</td>', row, flags=re.S)]
        if cells: rows[cells[0]] = cells[1:]
    for name, d in docments(joint_loss, full=True).items():   # the table says what the code carries
        if name == 'return': continue
        default = '' if d['default'] is inspect.Parameter.empty else repr(d['default'])
        assert rows[name] == [d['anno'], default, (d['docment'] or '').replace('`', '')], (name, rows[name])


def test_settings_page_reads_fields_by_key(monkeypatch):
    "The settings page reads a field's metadata by key: 'doc' and 'check' always, 'role' as a column where declared."
    import dataclasses, types
    sys.path.insert(0, str(ROOT/'docs'))
    import build
    from kt_nb.experiment.settings import integer, choice
    @dataclasses.dataclass
    class ToyConfig:
        seeds: int = dataclasses.field(default=3, metadata={'check': integer(1), 'doc': 'seeds, `--seeds`',
                                                            'role': 'stage 2', 'cli': '--seeds'})
        mode: str = dataclasses.field(default='a', metadata={'doc': 'a | b', 'check': choice(lambda: ['a', 'b'])})
        hidden: int = 0   # no 'doc': not a setting
    ToyConfig.__module__ = 'toy'
    monkeypatch.setattr(build, 'CONFIGS', [('Toy', 'ToyConfig')])
    page = build.settings_page([types.SimpleNamespace(__name__='toy', ToyConfig=ToyConfig)])
    assert '| setting | default | role | meaning | check |' in page, page
    assert "| `seeds` | `3` | stage 2 | seeds, `--seeds` | `integer(low=1)` |" in page, page
    assert "| `mode` | `'a'` |  | a \\| b | `choice(choices=['a', 'b'])` |" in page, page
    assert 'hidden' not in page


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
    assert drawn['api/30_classification_explorer.html'] and drawn['results/lab_book.html'], drawn
    for name, figures in drawn.items(): assert all(figures), (name, figures)   # each figure drew its traces


def test_stored_outputs_load_nothing_from_the_internet():
    "Figures and snapshots stored in the notebooks draw with the page's own plotly.js: no script from a CDN."
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
