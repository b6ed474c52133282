"""The package is laid out like its architecture: layers that import only downwards, no cycle, small modules,
short export cells."""
import ast
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT/'kt_nb'
LAYERS = {'data': 0, 'engine': 1, 'experiment': 2, 'classification': 3, 'segmentation': 3, 'saliency': 3, 'examples': 3,
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


# -- one declaration per setting --------------------------------------------------------------------------------------

def settings_classes() -> list[type]:
    "Every `Settings` dataclass of the package (each module imported), the tutorial's example task included."
    import importlib
    from kt_nb.experiment.settings import Settings
    for name in modules():
        if name != 'kt_nb': importlib.import_module(name)
    found, todo = [], [Settings]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith('kt_nb.'): found.append(sub); todo.append(sub)
    return found


# hand lists of a setting's role, as kt_nb kept them before each setting declared its own
ROLE_LISTS = re.compile(r'^(STAGE1\w*|RUN_ONLY|ARM_ONLY|ADDED|QUICK|RUN_KEYS|SPEC_KEYS|SLURM_KEYS|TRAIN_PARAMETERS)$')


def sources_with_settings() -> dict[str, str]:
    "Every module of the package, and the code of the tutorial notebook that shows how a task declares its settings."
    found = {name: path.read_text() for name, path in modules().items()}
    cells = json.loads((ROOT/'nbs'/'43_your_task.ipynb').read_text())['cells']
    code = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
    found['nbs/43_your_task.ipynb'] = '\n'.join(l for s in code for l in s.splitlines()
                                               if not l.lstrip().startswith(('%', '!')))
    return found


def test_a_settings_role_lives_in_its_declaration_only():
    """No module keeps a list of settings by role (`STAGE1_SETTINGS`, `RUN_ONLY`, ...) or an inline tuple of setting names
    (a stage-1 key written by hand): the stage-1 key, the run's identity, the quick size and the rest are derived."""
    from dataclasses import fields
    names = {f.name for config in settings_classes() for f in fields(config)}
    wrong = []
    for where, text in sources_with_settings().items():
        for node in ast.walk(ast.parse(text)):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            for t in targets:
                label = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ''
                if ROLE_LISTS.match(label): wrong.append(f"{where}: {label} = ...")
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2:
                strings = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len(strings) == len(node.elts) and set(strings) <= names:
                    wrong.append(f"{where}:{node.lineno}: {strings}")
    assert not wrong, f"settings listed by hand, not derived from their declarations: {wrong}"


def test_every_declaration_has_its_role_check_and_help():
    from dataclasses import dataclass, fields
    from kt_nb.experiment.settings import ROLES, Settings, integer, setting
    classes = settings_classes()
    assert {'TwoStageConfig', 'ClassificationConfig', 'SegmentationConfig', 'SaliencyConfig', 'TagsConfig', 'BenchConfig',
            'LoaderBenchConfig', 'SweepSettings', 'SweepSpec', 'TrainParameters', 'SlurmSettings'} \
        <= {c.__name__ for c in classes}
    for config in classes:
        for f in fields(config):
            assert f.metadata.get('role') in ROLES, (config.__name__, f.name)
            assert callable(f.metadata.get('check')) and f.metadata.get('doc', '').strip(), (config.__name__, f.name)
    # and one without its role is no class: refused as it is made, in one line naming it
    try:
        @dataclass
        class Forgetful(Settings):
            n_train: int = setting(640, integer(1), 'training images')
    except TypeError as e: said = str(e)
    else: raise AssertionError("a setting without a role made a class")
    assert len(said.splitlines()) == 1 and "setting 'n_train' of Forgetful has no role" in said, said


def option_literals() -> dict[str, set[str]]:
    "Per `kt-nb` command (None: every command), the option strings written by hand in its parser's function in cli.py."
    found = {}
    for function in ast.walk(ast.parse((PACKAGE/'cli.py').read_text())):
        if not isinstance(function, ast.FunctionDef): continue
        calls = [n for n in ast.walk(function)
                 if isinstance(n, ast.Call) and isinstance(n.func, (ast.Attribute, ast.Name))]
        named = lambda c: c.func.attr if isinstance(c.func, ast.Attribute) else c.func.id
        commands = [c.args[0].value for c in calls
                    if named(c) == 'add' and c.args and isinstance(c.args[0], ast.Constant)]
        for call in calls:
            if named(call) != 'add_argument': continue
            options = {a.value for a in call.args if isinstance(a, ast.Constant) and str(a.value).startswith('-')}
            # a function that adds two commands (bench, bench-loader): each add_argument belongs to the one before it
            before = [c for c in calls if named(c) == 'add' and c.args and isinstance(c.args[0], ast.Constant)
                      and c.lineno <= call.lineno]
            command = before[-1].args[0].value if before else (None if not commands else commands[0])
            found.setdefault(command, set()).update(options)
    return found


def test_no_option_is_written_by_hand_for_a_declared_setting():
    """Each command's options for settings are generated from their declarations (`cli.add_settings`); what cli.py writes
    by hand (`--out`, `--set`, `--quick`, ...) is no setting of the configs the command takes."""
    import argparse
    from kt_nb.cli import build_parser
    from kt_nb.experiment.settings import settings_of
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    hand = option_literals()
    assert set(hand) - {None} <= set(commands), hand
    for name, sub in commands.items():
        configs = {a.setting_of for a in sub._actions if hasattr(a, 'setting_of')}
        declared = {f"--{s.replace('_', '-')}" for config in configs for s in settings_of(config)}
        generated = {o for a in sub._actions if hasattr(a, 'setting_of') for o in a.option_strings}
        assert declared <= generated, (name, declared - generated)   # every declared setting is an option
        written = hand.get(name, set()) | hand.get(None, set())
        assert not written & declared, \
            f"kt-nb {name}: {sorted(written & declared)} written by hand for declared settings"
    assert {a.setting_of.__name__ for a in commands['sweep']._actions if hasattr(a, 'setting_of')} == {'SweepSettings'}
    assert {a.setting_of.__name__ for a in commands['bench']._actions if hasattr(a, 'setting_of')} == {'BenchConfig'}


# what each task's stage-1 cache key held before the keys were derived from the declarations, and the digest of the
# default config's key: old caches stay valid only while both stay the same (classification's lost `dataset` when runs
# came to know their data by content alone, wherever it lies)
STAGE1_KEYS = {
    'kt_nb.classification.experiment:classification_experiment':
        (['batch_size', 'img_size', 'n_train', 'n_val', 'stage1_epochs', 'stage1_lr'], '724130cb'),
    'kt_nb.segmentation.experiment:segmentation_experiment':
        (['batch_size', 'data_seed', 'n_train', 'size', 'stage1_epochs', 'stage1_lr', 'task'], 'e59af4f0'),
    'kt_nb.saliency.experiment:saliency_experiment':
        (['batch_size', 'clip_length', 'data_seed', 'frames_per_video', 'img_size', 'n_train_videos', 'size',
          'stage1_epochs', 'stage1_lr', 'task'], '005555d6'),
    'kt_nb.examples.tags:tags_experiment':
        (['batch_size', 'img_size', 'n_train', 'stage1_epochs', 'stage1_lr', 'task'], '36e5bf60'),
}


def test_each_tasks_stage1_cache_key_is_unchanged():
    from kt_nb.experiment.folders import digest
    from kt_nb.experiment.sweeps import load_hooks
    from kt_nb.experiment.settings import located
    for name, (keys, known) in STAGE1_KEYS.items():
        hooks, cfg = load_hooks(name), load_hooks(name).config()
        decided = {k: v for k, v in hooks.stage1_settings(cfg).items() if k not in located(cfg)}   # as train_stage1
        assert (sorted(decided), digest(decided)) == (keys, known), (name, decided)


# The shapes every task shares: a reader who knows one task finds their way in any other by file name alone.
TASK_FILES = {'data.py', 'models.py', 'experiment.py', 'explorer.py'}
PRODUCT_TASKS = {'classification': 'Classification', 'segmentation': 'Segmentation', 'saliency': 'Saliency'}


def test_every_task_has_the_same_file_shapes():
    """Each task: its `Task` and metrics (task.py), data, models, experiment (the `<Task>Config` and the hooks, as
    `<task>_experiment`) and explorer. Classification's `Task` is the engine's reference task (the learner's default),
    so it alone has no task.py."""
    import importlib
    assert set(PRODUCT_TASKS) == TASKS - {'examples'}, TASKS
    for task, title in PRODUCT_TASKS.items():
        files = {p.name for p in (PACKAGE/task).glob('*.py')}
        assert TASK_FILES <= files, f"kt_nb.{task} lacks {sorted(TASK_FILES - files)}"
        assert ('task.py' in files) == (task != 'classification'), f"kt_nb.{task}: task.py"
        experiment = importlib.import_module(f'kt_nb.{task}.experiment')
        hooks, config = getattr(experiment, f'{task}_experiment'), getattr(experiment, f'{title}Config')
        assert hooks.config is config, (task, hooks.config)
    assert not (PACKAGE/'tags').exists(), "the tutorial's example task lives in kt_nb.examples, not among the tasks"


def shown_at_work() -> dict[str, tuple[int, int]]:
    """Per notebook: (public exported definitions used by name in a code cell after their export cell and before the
    next one, all public exported definitions)."""
    counts = {}
    for notebook in sorted((ROOT/'nbs').glob('*.ipynb')):
        sources = [''.join(c['source']) for c in json.loads(notebook.read_text())['cells'] if c['cell_type'] == 'code']
        shown = total = 0
        for i, source in enumerate(sources):
            if not EXPORT.match(source.lstrip()): continue
            names = [d.name for d in ast.parse(source).body
                     if isinstance(d, (ast.FunctionDef, ast.ClassDef)) and not d.name.startswith('_')]
            after = []
            for later in sources[i + 1:]:
                if EXPORT.match(later.lstrip()): break
                after.append(later)
            shown += sum(bool(re.search(rf'\b{re.escape(n)}\b', '\n'.join(after))) for n in names)
            total += len(names)
        if total: counts[notebook.name] = (shown, total)
    return counts


def test_notebooks_show_each_definition_at_work():
    "At least 80 % of public exported definitions, pooled, and 60 % in every notebook, are used right after export."
    counts = shown_at_work()
    low = {name: f"{s}/{t}" for name, (s, t) in counts.items() if s < 0.6 * t}
    assert not low, f"notebooks below 60 %: {low}"
    shown, total = sum(s for s, _ in counts.values()), sum(t for _, t in counts.values())
    assert shown >= 0.8 * total, f"{shown}/{total} public definitions shown at work, pooled"


def test_notebook_numbers_follow_the_data():
    "Notebooks are numbered 00, 01, ... in the order the data flows: no insertion suffixes, no number twice."
    numbers = [p.name.split('_')[0] for p in sorted((ROOT/'nbs').glob('*.ipynb'))]
    assert all(re.fullmatch(r'\d\d', n) for n in numbers), numbers
    assert len(set(numbers)) == len(numbers), numbers
