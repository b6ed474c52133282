"""Every `kt_nb.`-dotted name the prose backticks names something the package has: a module, or an attribute of a
module or of a class, importable from the installed package. Fast: nothing is built, only the named modules imported.

Prose is the notebooks' markdown cells (nbs/, index.ipynb, docs/), docs/**/*.md and README.md; the Markdown pages'
code blocks, which no test runs, are checked by what they import from kt_nb. A name dangles when a module or an
attribute was renamed or moved and the prose was not; the failure lists every dangling name with its file.
Bare names (`seg_files`) are not checked: only a dotted name says where to look.
"""
import importlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every dotted name in a backticked span: `kt_nb.data.load.load_dataset('digits', ...)` names
# kt_nb.data.load.load_dataset; a hooks spec `hooks: kt_nb.examples.tags:tags_experiment` names its attribute too.
SPAN = re.compile(r'(?<!`)`([^`\n]+)`(?!`)')
DOTTED = re.compile(r'(?<![\w.])kt_nb(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?\b')


def prose_files() -> list[Path]:
    "The notebooks and Markdown pages whose prose is checked."
    notebooks = [*sorted(ROOT.glob('nbs/*.ipynb')), ROOT/'index.ipynb', *sorted(ROOT.glob('docs/**/*.ipynb'))]
    pages = [*sorted(ROOT.glob('docs/**/*.md')), ROOT/'README.md']
    return [p for p in notebooks + pages if p.exists() and '.ipynb_checkpoints' not in p.parts]


def prose(path: Path) -> str:
    "A Markdown page's text, or a notebook's markdown cells (code and outputs are checked by running them)."
    if path.suffix != '.ipynb': return path.read_text()
    cells = json.loads(path.read_text())['cells']
    return '\n\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')


def strip_fences(text: str) -> str:
    "Text without its fenced code blocks: a fence's backticks are not spans, and its code is not prose."
    return re.sub(r'^(```|~~~).*?^\1[^\S\n]*$', '', text, flags=re.M | re.S)


def dotted_names(text: str) -> list[str]:
    "Every `kt_nb.`-dotted name in the backticked spans of `text`, in order, each once."
    found = [m.group().replace(':', '.') for span in SPAN.findall(strip_fences(text)) for m in DOTTED.finditer(span)]
    return list(dict.fromkeys(found))


def fenced_imports(text: str) -> list[str]:
    "`from kt_nb.x import a, b` in a page's fenced code as kt_nb.x.a, kt_nb.x.b (a page's code runs in no test)."
    found = []
    for line in re.findall(r'^\s*from\s+(kt_nb[\w.]*)\s+import\s+\(?([\w, ]+)', text, flags=re.M):
        found += [f'{line[0]}.{n.split(" as ")[0].strip()}' for n in line[1].split(',') if n.strip()]
    found += re.findall(r'^\s*import\s+(kt_nb[\w.]*)', text, flags=re.M)
    return list(dict.fromkeys(found))


def resolves(name: str) -> bool:
    "Whether `name` is a module of the package, or an attribute (of an attribute...) of one."
    parts = name.split('.')
    for cut in range(len(parts), 0, -1):   # the longest importable module, then attributes of it
        try: obj = importlib.import_module('.'.join(parts[:cut]))
        except ModuleNotFoundError as e:
            if e.name and not '.'.join(parts[:cut]).startswith(e.name): raise   # a dependency is missing: say so
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr): return False
            obj = getattr(obj, attr)
        return True
    return False


def names_in(path: Path) -> list[str]:
    "The kt_nb names a file's prose backticks, and for a Markdown page, the ones its code blocks import."
    names = dotted_names(prose(path))
    if path.suffix == '.md': names += fenced_imports('\n'.join(python_blocks(path.read_text())))
    return list(dict.fromkeys(names))


def python_blocks(text: str) -> list[str]:
    "The fenced code blocks of a Markdown text whose info string says Python (or says nothing)."
    blocks, fence, lines = [], None, []
    for line in text.splitlines():
        if fence is None and (m := re.match(r'\s*(```|~~~)\s*(\S*)', line)):
            fence, python, lines = m.group(1), m.group(2) in ('', 'python', 'py', 'python3'), []
        elif fence is not None and line.strip().startswith(fence):
            if python: blocks.append('\n'.join(lines))
            fence = None
        elif fence is not None: lines.append(line)
    return blocks


def dangling(paths) -> list[str]:
    "'file: name' for every kt_nb name in `paths` that names nothing."
    return [f'{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: {n}'
            for p in paths for n in names_in(p) if not resolves(n)]


def test_the_checker_catches_renamed_names(tmp_path):
    "Dotted names in spans count, calls and attributes of classes too; a page's fenced code counts by its imports."
    page = tmp_path/'page.md'
    page.write_text("`kt_nb.segmentation.seg_files` reads folders, `kt_nb.segmenters` builds models and "
                    "`kt_nb.seg_experiment.run()` runs them; `kt_nb.data.load.load_dataset('digits')` loads, "
                    "`kt_nb.engine.learner.JointLearner.fit` fits, `kt_nb.engine` and `kt_nb` are there; "
                    "`hooks: kt_nb.segmentation.experiment:seg_hooks` is not, nor `from kt_nb.tags import x`.\n"
                    "```python\nx = `kt_nb.not_prose`\nfrom kt_nb.data.load import load_dataset, lost_name as l\n"
                    "from kt_nb.lost import (a,\n b)\n```\n")
    test_found = dotted_names(page.read_text())
    assert test_found == ['kt_nb.segmentation.seg_files', 'kt_nb.segmenters', 'kt_nb.seg_experiment.run',
                          'kt_nb.data.load.load_dataset', 'kt_nb.engine.learner.JointLearner.fit', 'kt_nb.engine',
                          'kt_nb', 'kt_nb.segmentation.experiment.seg_hooks', 'kt_nb.tags'], test_found
    assert dangling([page]) == [f'{page}: {n}' for n in ['kt_nb.segmentation.seg_files', 'kt_nb.segmenters',
                                'kt_nb.seg_experiment.run', 'kt_nb.segmentation.experiment.seg_hooks', 'kt_nb.tags',
                                'kt_nb.data.load.lost_name', 'kt_nb.lost.a']]
    assert dotted_names('`~/.cache/kt_nb/fashion-mnist`, `pip install kt_nb[cluster]`') == ['kt_nb']


def test_backticked_names_exist():
    "Every kt_nb name the prose backticks, or a page's code imports, is a module or attribute the package has."
    paths = prose_files()
    assert len(paths) > 30, paths   # the notebooks were found
    assert sum(len(names_in(p)) for p in paths) >= 10   # and the prose names things
    missing = dangling(paths)
    assert not missing, f'{len(missing)} backticked kt_nb name(s) name nothing:\n' + '\n'.join(missing)
