"""Build kt_nb's documentation site from the notebooks, with no network: `make docs`.

The pages are gathered into _site/src (the landing notebook, every numbered notebook as an API page, the
tutorials, reference pages written from the CLI's argparse and the config dataclasses, and the results
written from results/*.json), then Sphinx with myst-nb renders their stored outputs into _site/html (under a
minute on two cores).

An API page reads like nbdev's: the import cells are left out, and after each `#| export` cell its public
definitions are documented from the module itself, as nbdev's `show_doc` does: the signature, the docstring and
a table of the parameters from the docments the code carries (`fastcore.docments`). The export cell's code is
folded under its documentation: the signature and the table already say what a caller needs, the body is one
click away, and the page reads as the explanation the notebook is (nbdev's `#| export` hides it entirely)."""
import argparse, ast, dataclasses, importlib, inspect, json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS, SITE = ROOT/'docs', ROOT/'_site'
sys.path.insert(0, str(ROOT))

from kt_nb.experiment.views import plotly_js   # noqa: E402 (after the path is set)

# Notebooks by number: a new notebook lands in the group of its number (the last group is open-ended).
API_GROUPS = {'Data': range(0, 6), 'Engine': range(6, 17), 'Experiments': range(17, 25),
              'Classification': range(25, 31), 'Segmentation': range(31, 37), 'Video saliency': range(37, 43),
              'Your own task': range(43, 44), 'Benchmarks and CLI': range(44, 100)}
TUTORIALS = ['tutorials/your_data', 'tutorials/your_models', 'tutorials/which_pairs', 'api/43_your_task', 'api/30_classification_explorer',
             'tutorials/paper_imagenet', 'tutorials/sweeps']
CONFIGS = [('Classification (`kt-nb demo`)', 'ClassificationConfig'), ('Segmentation', 'SegmentationConfig'),
           ('Video saliency', 'SaliencyConfig'), ('Your own task: tags', 'TagsConfig')]
SIGNATURE_WIDTH = 88   # a signature longer than this is written one parameter a line
VALUE_WIDTH = 60       # a default longer than this is shortened with '...'


def toctree(caption: str, pages: list[str]) -> str:
    "A hidden MyST toctree: the theme's header lists its pages."
    return f"```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n:hidden:\n" + '\n'.join(pages) + '\n```\n'


def site_links(text: str) -> str:
    "Links written for the repository (README) as links between the site's pages."
    text = re.sub(r'\]\(docs/', '](', text)
    return re.sub(r'\]\(nbs/([^)]+)\)', r'](api/\1)', text)


def md_text(text: str) -> str:
    "Plain text as Markdown that shows it as written: code spans kept, emphasis, HTML and table pipes escaped."
    parts = re.split(r'(`[^`]*`)', text)
    escape = lambda s: re.sub(r'([\\*_<>\[\]|$])', r'\\\1', s)
    return ''.join(p.replace('|', '\\|') if p.startswith('`') else escape(p) for p in parts)


def code_span(text: str) -> str:
    "Text as a code span a table cell can hold."
    text = str(text).replace('\n', ' ').replace('|', '\\|')
    return f'`` {text} ``' if '`' in text else f'`{text}`'


def short(value, width: int = VALUE_WIDTH) -> str:
    "A value's repr, shortened to `width` characters."
    text = getattr(value, '__name__', None) if callable(value) and not isinstance(value, type) else None
    text = text or repr(value)
    return text if len(text) <= width else text[:width - 3] + '...'


# --- the import cells an API page leaves out --------------------------------------------------------------------

def directives(code: str) -> list[str]:
    "The nbdev directives of a code cell (`#| export` -> ['export'])."
    return re.findall(r'^#\|\s*(\S+)', code, flags=re.M)


def statements(code: str) -> list[ast.stmt] | None:
    "The top-level statements of a cell's code, or None where it is not plain Python (a magic)."
    try: return ast.parse(re.sub(r'^#\|.*\n?', '', code, flags=re.M)).body
    except SyntaxError: return None


def imports_only(code: str) -> bool:
    "Whether a cell holds nothing but imports."
    body = statements(code)
    return bool(body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)


def without_test_imports(code: str) -> str:
    "A cell's code without its `from fastcore.test import *` (test helpers; the imports of the story stay)."
    body = statements(code)
    if not body: return code
    lines = code.splitlines(keepends=True)
    for s in reversed(body):
        if isinstance(s, ast.ImportFrom) and s.module == 'fastcore.test': del lines[s.lineno - 1:s.end_lineno]
    return ''.join(lines)


def private_assignment(s: ast.stmt) -> bool:
    "`_T = TypeVar('_T')`: an assignment of private names only."
    targets = s.targets if isinstance(s, ast.Assign) else [s.target] if isinstance(s, ast.AnnAssign) else None
    return bool(targets) and all(n.id.startswith('_') for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))


def import_cell(code: str) -> bool:
    """The exported imports of a module (with a private name or two it sets up, `_T = TypeVar('_T')`), or the plain
    cell of test helpers (`from fastcore.test import *`)."""
    if imports_only(code): return 'export' in directives(code) or re.search(r'\bfastcore\.test\b', code) is not None
    body = statements(code) or []
    return ('export' in directives(code) and any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)
            and all(isinstance(s, (ast.Import, ast.ImportFrom)) or private_assignment(s) for s in body))


def strip_fences(text: str) -> str:
    "Markdown without its fenced code blocks (a `# comment` in a fence is not a heading)."
    return re.sub(r'^(```|~~~).*?^\1[^\S\n]*$', '', text, flags=re.M | re.S)


# --- nbdev's show_doc, at build time ----------------------------------------------------------------------------

class _Shown(str):
    "Text that `inspect` prints as it is (an annotation's string, a shortened default)."
    def __repr__(self): return str(self)


def parameters(obj) -> list[inspect.Parameter] | None:
    "The parameters a caller passes: `self` and `cls` left out; None where Python cannot say."
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return None
    params = list(sig.parameters.values())
    if params and params[0].name in ('self', 'cls') and not inspect.ismethod(obj): params = params[1:]
    return params


def dataclass_defaults(cls) -> dict:
    "A dataclass's defaults, factories called (the signature says only `<factory>`)."
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type): return {}
    return {f.name: f.default_factory() for f in dataclasses.fields(cls)
            if f.default_factory is not dataclasses.MISSING}


def annotation(anno) -> str:
    "An annotation as the code writes it (the modules use `from __future__ import annotations`)."
    return anno if isinstance(anno, str) else inspect.formatannotation(anno)


def signature_text(name: str, obj) -> str:
    "`def name(...) -> ...` (or `class Name(...)`), one parameter a line where it is long."
    params, factories = parameters(obj), dataclass_defaults(obj)
    if isinstance(obj, type) and not params: return f'class {name}'   # no arguments, or none Python can list
    if params is None: return name
    shown = []
    for p in params:
        default = factories.get(p.name, p.default)
        shown.append(p.replace(
            annotation=p.empty if p.annotation is p.empty else _Shown(annotation(p.annotation)),
            default=p.empty if default is p.empty else _Shown(short(default))))
    keyword = 'class' if isinstance(obj, type) else 'async def' if inspect.iscoroutinefunction(obj) else 'def'
    returns = '' if isinstance(obj, type) else inspect.signature(obj).return_annotation
    tail = '' if returns in ('', inspect.Signature.empty) else f' -> {annotation(returns)}'
    one_line = f'{keyword} {name}{inspect.Signature(shown)}{tail}'   # `/` and `*` as Python writes them
    if len(one_line) <= SIGNATURE_WIDTH or not shown: return one_line
    lines, starred = [], any(p.kind == p.VAR_POSITIONAL for p in shown)
    for i, p in enumerate(shown):
        if p.kind == p.KEYWORD_ONLY and not starred: lines.append('*'); starred = True
        lines.append(str(p))
        if p.kind == p.POSITIONAL_ONLY and (i == len(shown) - 1 or shown[i + 1].kind != p.POSITIONAL_ONLY):
            lines.append('/')
    return f'{keyword} {name}(\n' + ''.join(f'    {l},\n' for l in lines) + f'){tail}'


def docstring(obj) -> str:
    "The docstring `obj` carries (a method's is inherited; a dataclass's generated one is not a docstring)."
    if not isinstance(obj, type): return inspect.getdoc(obj) or ''
    doc = obj.__dict__.get('__doc__') or ''
    if dataclasses.is_dataclass(obj) and doc.startswith(f'{obj.__name__}('): return ''
    return inspect.cleandoc(doc)


def docments_of(obj) -> dict:
    "fastcore's docments of `obj`, a config field's `doc` standing in where its line has no comment."
    from fastcore.docments import docments
    try: found = docments(obj, full=True, returns=True)
    except Exception: return {}
    if dataclasses.is_dataclass(obj) and isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if f.name in found and not found[f.name]['docment'] and f.metadata.get('doc'):
                found[f.name]['docment'] = f.metadata['doc']
    return found


def parameter_table(obj) -> str:
    "nbdev's table of parameters: type, default and meaning of each, and what comes back; '' where none is documented."
    params, found = parameters(obj), docments_of(obj)
    if not params or not any(found.get(p.name, {}).get('docment') for p in params): return ''
    factories, empty = dataclass_defaults(obj), inspect.Parameter.empty
    rows = ['| | Type | Default | Details |', '|---|---|---|---|']
    for p in params:
        star = '\\*' * (2 if p.kind == p.VAR_KEYWORD else 1 if p.kind == p.VAR_POSITIONAL else 0)
        default = factories.get(p.name, p.default)
        cells = [star + md_text(p.name), '' if p.annotation is empty else code_span(annotation(p.annotation)),
                 '' if default is empty else code_span(short(default)),
                 md_text(found.get(p.name, {}).get('docment') or '')]
        rows.append('| ' + ' | '.join(cells) + ' |')
    ret = found.get('return', {})
    returns = None if isinstance(obj, type) else inspect.signature(obj).return_annotation
    if ret.get('docment') or returns not in (None, empty):
        rows.append('| **Returns** | ' + ('' if returns in (None, empty) else code_span(annotation(returns)))
                    + ' | | ' + md_text(ret.get('docment') or '') + ' |')
    return '\n'.join(rows) + '\n'


def show_doc(name: str, obj, level: int = 3) -> str:
    """A definition as nbdev's `show_doc` renders it: heading (a section of class `kt-def`, so that every definition
    looks alike at whatever depth it sits), signature, docstring, table of parameters."""
    doc = docstring(obj)
    parts = [f"{{.kt-def}}\n{'#' * level} {md_text(name)}\n",
             f'```{{code-block}} python\n:class: kt-signature\n{signature_text(name.rpartition(".")[2], obj)}\n```\n']
    bases = [b for b in getattr(obj, '__bases__', ()) if b is not object] if isinstance(obj, type) else []
    if bases: parts.append('Bases: ' + ', '.join(code_span(b.__qualname__) for b in bases) + '\n')
    if doc: parts.append(md_text(doc) + '\n')
    table = parameter_table(obj)
    if table: parts.append(table)
    return '\n'.join(parts)


def patched_onto(node: ast.FunctionDef) -> list[str]:
    "The classes fastcore's `@patch` puts a function on (the annotation of its first parameter)."
    patched = any((d.func if isinstance(d, ast.Call) else d).id == 'patch' for d in node.decorator_list
                  if isinstance(d.func if isinstance(d, ast.Call) else d, ast.Name))
    if not patched or not node.args.args or node.args.args[0].annotation is None: return []
    anno = node.args.args[0].annotation
    names = [n.id for n in ast.walk(anno) if isinstance(n, ast.Name)]
    return names or ([anno.value] if isinstance(anno, ast.Constant) and isinstance(anno.value, str) else [])


def unwrap(obj):
    "The function behind a property, a static or a class method."
    if isinstance(obj, property): return obj.fget
    if isinstance(obj, (staticmethod, classmethod)): return obj.__func__
    return obj


def documented(code: str, module, level: int = 3) -> list[tuple[str, object, int]]:
    "(name, object, heading level) of each public definition of an export cell, as the module holds it."
    found = []
    for node in statements(code) or []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith('_'):
            owners = patched_onto(node)
            for owner in owners or [None]:
                holder = getattr(module, owner, None) if owner else module
                attr = holder.__dict__.get(node.name) if isinstance(holder, type) else getattr(holder, node.name, None)
                if attr is not None: found.append((f'{owner}.{node.name}' if owner else node.name, unwrap(attr), level))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith('_') and hasattr(module, node.name):
            cls = getattr(module, node.name)
            found.append((node.name, cls, level))
            for item in node.body:
                if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith('_')
                        and item.name in cls.__dict__):
                    found.append((f'{node.name}.{item.name}', unwrap(cls.__dict__[item.name]), min(level + 1, 6)))
    return found


def defined(code: str) -> list[str]:
    "The names an export cell defines (for the label of its folded source)."
    names = []
    for node in statements(code) or []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


# --- pages ------------------------------------------------------------------------------------------------------

def markdown_cell(text: str, id: str) -> dict:
    return {'cell_type': 'markdown', 'id': id, 'metadata': {}, 'source': text}


def folded(cell: dict, names: list[str]) -> dict:
    "A code cell whose source is folded under a toggle that names what it defines."
    label = ', '.join(names[:3]) + (', …' if len(names) > 3 else '')
    metadata = {**cell.get('metadata', {}), 'tags': [*cell.get('metadata', {}).get('tags', []), 'hide-input'],
                'mystnb': {'code_prompt_show': f'Source of {label}' if label else 'Source',
                           'code_prompt_hide': 'Hide the source'}}
    return {**cell, 'metadata': metadata}


def page_notebook(source: Path, extra_markdown: str = '') -> dict:
    """A notebook as a page: hidden cells and nbdev's directives left out, links made the site's own; a module's
    notebook (`#| default_exp`) as an API page: import cells left out, every public export documented."""
    nb = json.loads(source.read_text())
    module = exported_module(nb)
    cells, section = [], 1   # the level of the heading the text is under: a definition is a section inside it
    for cell in nb['cells']:
        text = ''.join(cell['source'])
        if cell['cell_type'] != 'code':
            cells.append({**cell, 'source': site_links(text)})
            section = ([len(h) for h in re.findall(r'^(#{1,6})\s', strip_fences(text), flags=re.M)] or [section])[-1]
            continue
        found = directives(text)
        if 'hide' in found or 'default_exp' in found or (module and import_cell(text)): continue
        code = re.sub(r'^#\|.*\n?', '', text, flags=re.M)
        if module: code = without_test_imports(code)
        if module and 'export' in found:
            entries = documented(text, module, min(section + 1, 6))
            cells += [markdown_cell(show_doc(name, obj, level), f"{cell.get('id', 'cell')}-doc{i}")
                      for i, (name, obj, level) in enumerate(entries)]
            if entries:   # folded under its documentation; helpers and constants stay open: their code is their doc
                cells.append(folded({**cell, 'source': code}, defined(text)))
                continue
        cells.append({**cell, 'source': code})
    if extra_markdown: cells.append(markdown_cell(extra_markdown, 'site-contents'))
    python = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
              'language_info': {'name': 'python', 'pygments_lexer': 'ipython3'}}
    return {**nb, 'metadata': {**nb.get('metadata', {}), **python}, 'cells': cells}


def exported_module(nb: dict):
    "The module a notebook exports (`#| default_exp engine.losses` -> kt_nb.engine.losses), imported; or None."
    for cell in nb['cells']:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(cell['source']), flags=re.M)
        if cell['cell_type'] != 'code' or not m: continue
        try: return importlib.import_module(f'kt_nb.{m.group(1)}')
        except Exception as e:
            raise RuntimeError(f'kt_nb.{m.group(1)} does not import, so its page cannot document it: {e}') from e
    return None


def write_json(path: Path, nb: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))


def api_group(nb: Path) -> str:
    "The group of a numbered notebook, by its number."
    number = int(re.match(r'\d+', nb.stem).group())
    for name, numbers in API_GROUPS.items():
        if number in numbers: return name
    raise ValueError(f'{nb.name}: number {number} is in no range of API_GROUPS; add it to one')


def api_pages(src: Path) -> dict[str, list[str]]:
    "Every numbered notebook as an API page, grouped by the package's layers (in API_GROUPS' order)."
    groups = {name: [] for name in API_GROUPS}
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        write_json(src/'api'/nb.name, page_notebook(nb))
        groups[api_group(nb)].append(f'api/{nb.stem}')
    return {name: pages for name, pages in groups.items() if pages}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    "Rows of Markdown cells as a Markdown table."
    lines = ['| ' + ' | '.join(row) + ' |' for row in [header, *rows]]
    return '\n'.join([lines[0], '|' + '---|' * len(header), *lines[1:]]) + '\n'


def options_as_typed(text: str) -> str:
    "Help text with each `--option` it names as a code span, so that it reads as it is typed."
    parts = re.split(r'(`[^`]*`)', text)
    option = re.compile(r'(?<![\w`-])(--[A-Za-z][\w-]*(?:=\S+)?)')
    return ''.join(p if p.startswith('`') else option.sub(r'`\1`', md_text(p).replace('\\_', '_'))
                   for p in parts)


def cli_page() -> str:
    "Every command and option of `kt-nb`, from its argparse parser."
    from kt_nb.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    parts = ['# Command line\n\nEvery command of `kt-nb` and every option, as `kt-nb COMMAND --help` prints them.\n']
    for name, sub in commands.items():
        description = f'{options_as_typed(sub.description)}\n\n' if sub.description else ''
        parts.append(f'## `kt-nb {name}`\n\n{description}```text\n{sub.format_usage().strip()}\n```\n')
        rows = [[', '.join(code_span(o) for o in (a.option_strings or [a.dest])),
                 options_as_typed((a.help or '').replace('%%', '%'))]
                for a in sub._actions if a.help != argparse.SUPPRESS and a.dest != 'help']
        parts.append(markdown_table(['option', 'meaning'], rows))
    return '\n'.join(parts)


def find_definition(name: str, modules: list):
    "The class or function called `name` in the first of `modules` that defines it (tasks move between modules)."
    for module in modules:
        obj = getattr(module, name, None)
        if obj is not None and getattr(obj, '__module__', None) == module.__name__: return obj
    raise LookupError(f'no kt_nb module defines {name}; the settings page lists it (docs/build.py CONFIGS)')


def check_text(check) -> str:
    "A setting's check as the code makes it: `integer(low=1)`, `boolean`, ..."
    if check is None: return ''
    qualname = getattr(check, '__qualname__', type(check).__name__)
    factory_name, _, local = qualname.partition('.<locals>.')
    if not local or not getattr(check, '__closure__', None): return qualname
    values = dict(zip(check.__code__.co_freevars, (c.cell_contents for c in check.__closure__)))
    factory = getattr(inspect.getmodule(check), factory_name, None)
    try: params = inspect.signature(factory).parameters
    except (TypeError, ValueError): params = {}
    def shown(v):   # a registry's lambda (`choice(lambda: ...)`) as the values it gives now
        if getattr(v, '__name__', '') == '<lambda>' and not inspect.signature(v).parameters: v = list(v())
        return short(v, 50)
    args = [f'{k}={shown(v)}' for k, v in values.items() if k in params and params[k].default is not v]
    return f'{factory_name}({", ".join(args)})'


def settings_page(modules: list) -> str:
    "Every setting of every task's config: its default, its check, its role (where declared) and its meaning."
    parts = ['# Settings\n\nEvery setting of each task\'s two-stage experiment, with its default and its meaning. '
             'The command line takes each as `--name` or `--set name=value`; a sweep\'s grid takes them by name.\n']
    for title, name in CONFIGS:
        config = find_definition(name, modules)
        fields = [f for f in dataclasses.fields(config) if 'doc' in f.metadata]
        roles = any('role' in f.metadata for f in fields)
        header = ['setting', 'default'] + (['role'] if roles else []) + ['meaning', 'check']
        rows = []
        for f in fields:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            row = [code_span(f.name), code_span(repr(default))]
            if roles: row.append(md_text(str(f.metadata.get('role', ''))))
            rows.append(row + [options_as_typed(f.metadata['doc']), code_span(check_text(f.metadata.get('check')))])
        parts.append(f'## {title}\n\n`{config.__module__}.{config.__name__}`\n\n' + markdown_table(header, rows))
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
    modules = [exported_module(json.loads(nb.read_text())) for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))]
    reference = {'reference/cli': cli_page, 'reference/settings': lambda: settings_page([m for m in modules if m]),
                 'results/files': results_page}
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
