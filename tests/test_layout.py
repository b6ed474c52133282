"""The package is laid out like its architecture: layers that import only downwards, no cycle, small modules,
short export cells."""
import ast
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT/'kt_nb'
LAYERS = {'data': 0, 'engine': 1, 'experiment': 2, 'classification': 3, 'segmentation': 3, 'saliency': 3, 'tags': 3,
          'cli': 4, 'bench': 4}
TASKS = {name for name, layer in LAYERS.items() if layer == 3}
# `#| export`, `#|export`, `# | exporti`, `#| exports`, `#| export module`
EXPORT = re.compile(r'^#\s*\|\s*export[is]?\b')


def modules() -> dict[str, Path]:
    "Every module of the package by its dotted name (kt_nb.engine.learner), the generated index aside."
    return {'.'.join(p.relative_to(ROOT).with_suffix('').parts).removesuffix('.__init__'): p
            for p in PACKAGE.rglob('*.py') if p.name != '_modidx.py'}


def imports(name: str, path: Path) -> set[str]:
    "The kt_nb modules a module imports anywhere in it (inside functions too: a lazy import hides no cycle here)."
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found |= {f'{base}.{a.name}' for a in node.names} | {base}
        elif isinstance(node, ast.Import): found |= {a.name for a in node.names}
    known = modules()
    return {m for m in found if m in known and m != name and m != 'kt_nb'}


def top(name: str) -> str:
    return name.split('.')[1] if name.count('.') else name


def test_subpackages():
    packages = sorted(p.parent.name for p in PACKAGE.glob('*/__init__.py'))
    assert len(packages) >= 4, packages
    assert set(packages) <= set(LAYERS), f"a subpackage with no layer: {set(packages) - set(LAYERS)}"


def test_no_import_cycle():
    graph = {name: imports(name, path) for name, path in modules().items()}
    state = {}
    def visit(node, trail):
        if state.get(node) == 'done': return
        assert state.get(node) != 'open', f"import cycle: {' -> '.join(trail[trail.index(node):] + [node])}"
        state[node] = 'open'
        for nxt in graph[node]: visit(nxt, trail + [node])
        state[node] = 'done'
    for node in graph: visit(node, [])


def test_imports_run_downwards_and_never_between_tasks():
    wrong = []
    for name, path in modules().items():
        if name == 'kt_nb': continue
        for other in imports(name, path):
            a, b = top(name), top(other)
            if a == b: continue
            if LAYERS[b] > LAYERS[a] or (a in TASKS and b in TASKS): wrong.append(f"{name} -> {other}")
    assert not wrong, wrong


def test_modules_are_short():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, long


def test_export_cells_are_short():
    sizes = {}
    for notebook in sorted((ROOT/'nbs').glob('*.ipynb')):
        for cell in json.loads(notebook.read_text())['cells']:
            lines = ''.join(cell['source']).splitlines()
            if cell['cell_type'] == 'code' and lines and EXPORT.match(lines[0]):
                sizes[f"{notebook.name}: {lines[1][:60] if len(lines) > 1 else ''}"] = len(lines) - 1
    assert statistics.median(sizes.values()) <= 15, statistics.median(sizes.values())
    assert max(sizes.values()) <= 60, {k: v for k, v in sizes.items() if v > 60}


def test_the_test_sees_what_it_should():
    "The checks above would catch an upward import, a cycle and a sideways one: relative imports are read right."
    names = modules()
    assert 'kt_nb.engine.models' in imports('kt_nb.engine.learner', names['kt_nb.engine.learner'])
    assert 'kt_nb.data.sets' in imports('kt_nb.engine.learner', names['kt_nb.engine.learner'])
    assert EXPORT.match('#|export') and EXPORT.match('# | exporti') and EXPORT.match('#| export experiment.views')
    assert not EXPORT.match('#| exporter')
