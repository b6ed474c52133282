"""Build kt_nb's documentation site from the notebooks, with no network: `make docs`.

The pages are gathered into _site/src (the landing notebook, every numbered notebook as an API page, the
tutorials, reference pages written from the CLI's argparse and the config dataclasses, and the results
written from results/*.json), then Sphinx with myst-nb renders their stored outputs into _site/html (about 20 s
on two cores)."""
import argparse, json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS, SITE = ROOT/'docs', ROOT/'_site'
sys.path.insert(0, str(ROOT))

from kt_nb.experiment.views import plotly_js   # noqa: E402 (after the path is set)

API_GROUPS = {'Data': '00', 'Engine': '0[1-6]', 'Experiments': '07', 'Classification': '08',
              'Segmentation': '09', 'Video saliency': '10', 'Your own task': '11', 'Benchmarks and CLI': '1[23]'}
TUTORIALS = ['tutorials/your_data', 'api/11_your_task', 'api/08b_classification_explorer',
             'tutorials/paper_imagenet', 'tutorials/sweeps']


def toctree(caption: str, pages: list[str]) -> str:
    "A hidden MyST toctree: the theme's header lists its pages."
    return f"```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n:hidden:\n" + '\n'.join(pages) + '\n```\n'


def site_links(text: str) -> str:
    "Links written for the repository (README) as links between the site's pages."
    text = re.sub(r'\]\(docs/', '](', text)
    return re.sub(r'\]\(nbs/([^)]+)\)', r'](api/\1)', text)


def page_notebook(source: Path, extra_markdown: str = '') -> dict:
    "A notebook as a page: hidden cells and nbdev's directives left out, links made the site's own."
    nb = json.loads(source.read_text())
    cells = []
    for cell in nb['cells']:
        text = ''.join(cell['source'])
        if cell['cell_type'] == 'code':
            directives = re.findall(r'^#\|\s*(\S+)', text, flags=re.M)
            if 'hide' in directives or 'default_exp' in directives: continue
            text = re.sub(r'^#\|.*\n?', '', text, flags=re.M)
        else:
            text = site_links(text)
        cells.append({**cell, 'source': text})
    if extra_markdown:
        cells.append({'cell_type': 'markdown', 'id': 'site-contents', 'metadata': {}, 'source': extra_markdown})
    python = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
              'language_info': {'name': 'python', 'pygments_lexer': 'ipython3'}}
    return {**nb, 'metadata': {**nb.get('metadata', {}), **python}, 'cells': cells}


def write_json(path: Path, nb: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))


def api_pages(src: Path) -> dict[str, list[str]]:
    "Every numbered notebook as an API page, grouped by the package's layers."
    groups = {}
    for name, prefix in API_GROUPS.items():
        for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
            if not re.match(prefix, nb.stem): continue
            write_json(src/'api'/nb.name, page_notebook(nb))
            groups.setdefault(name, []).append(f'api/{nb.stem}')
    return groups


def markdown_table(frame) -> str:
    "A small frame as a Markdown table (cells with '|' escaped)."
    cell = lambda v: str(v).replace('|', '\\|').replace('\n', ' ')
    rows = [[frame.index.name or ''] + list(frame.columns)] + [[i, *r] for i, r in zip(frame.index, frame.values)]
    lines = ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in rows]
    return '\n'.join([lines[0], '|' + '---|' * len(rows[0]), *lines[1:]]) + '\n'


def cli_page() -> str:
    "Every command and option of `kt-nb`, from its argparse parser."
    from kt_nb.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    parts = ['# Command line\n\nEvery command of `kt-nb` and every option, as `kt-nb COMMAND --help` prints them.\n']
    for name, sub in commands.items():
        parts.append(f'## `kt-nb {name}`\n\n{sub.description or ""}\n\n```text\n{sub.format_usage().strip()}\n```\n')
        rows = [('`' + ', '.join(a.option_strings or [a.dest]) + '`', (a.help or '').replace('%%', '%'))
                for a in sub._actions if a.help != argparse.SUPPRESS and a.dest != 'help']
        parts.append('| option | meaning |\n|---|---|\n' + ''.join(f'| {o} | {h.replace("|", chr(92) + "|")} |\n'
                                                               for o, h in rows))
    return '\n'.join(parts)


def settings_page() -> str:
    "Every setting of every task's config: its default and its help, from the dataclasses."
    from kt_nb.cli import settings_table
    from kt_nb.classification.experiment import DemoConfig
    from kt_nb.segmentation.experiment import SegConfig
    from kt_nb.saliency.experiment import VideoConfig
    from kt_nb.tags.experiment import TagsConfig
    parts = ['# Settings\n\nEvery setting of each task\'s two-stage experiment, with its default and its meaning. '
             'The command line takes each as `--name` or `--set name=value`; a sweep\'s grid takes them by name.\n']
    for title, config in [('Classification (`kt-nb demo`)', DemoConfig), ('Segmentation', SegConfig),
                          ('Video saliency', VideoConfig), ('Your own task: tags', TagsConfig)]:
        table = settings_table(config)
        table.index = [f'`{i}`' for i in table.index]
        table.index.name = 'setting'
        parts.append(f'## {title}\n\n`{config.__module__}.{config.__name__}`\n\n' + markdown_table(table))
    return '\n'.join(parts)


def results_page() -> str:
    "Every published result file: its arm table and its claims, worded by `claims`."
    from kt_nb.experiment.evidence import arm_table, claims
    parts = ['# Every result file\n\nEach file in `results/` as `arm_table` and `claims` read it: the same '
             'words as the notebooks and the command line.\n']
    for path in sorted((ROOT/'results').glob('*.json')):
        results = json.loads(path.read_text())
        if 'summary' not in results: continue   # not a two-stage run (the screening's figures)
        parts.append(f'## `results/{path.name}`\n\n' + arm_table(results).to_html(border=0) + '\n\n'
                     + ''.join(f'- {c}\n' for c in claims(results)))
    return '\n'.join(parts)


def gather(src: Path):
    "Write every page of the site into `src`."
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns('build.py', '__pycache__', '*.ipynb_checkpoints'))
    for page in src.rglob('*.ipynb'): write_json(page, page_notebook(page))
    (src/'_static').mkdir(exist_ok=True)
    shutil.copy(plotly_js(), src/'_static'/'plotly.min.js')
    groups = api_pages(src)
    reference = {'reference/cli': cli_page, 'reference/settings': settings_page, 'results/files': results_page}
    for page, write in reference.items():
        (src/page).parent.mkdir(parents=True, exist_ok=True)
        (src/f'{page}.md').write_text(write())
    trees = [toctree('Tutorials', TUTORIALS)]
    trees += [toctree(f'API: {name}', pages) for name, pages in groups.items()]
    trees += [toctree('Reference', ['reference/cli', 'reference/settings', 'how_it_is_built']),
              toctree('Results', ['results/lab_book', 'results/files'])]
    landing = page_notebook(ROOT/'index.ipynb', '\n'.join(trees))
    write_json(src/'index.ipynb', landing)


def build() -> Path:
    "Gather the pages and build the site; returns the folder of its HTML."
    from sphinx.cmd.build import build_main
    src, html = SITE/'src', SITE/'html'
    gather(src)
    shutil.rmtree(html, ignore_errors=True)
    if build_main(['-q', '-b', 'html', '-j', '2', str(src), str(html)]) != 0: sys.exit('the site did not build')
    return html


if __name__ == '__main__':
    html = build()
    print(f'the site: {html/"index.html"}')
