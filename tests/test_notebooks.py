"""Every notebook runs top to bottom and its tests pass (cells flagged slow/gpu skipped unless KT_NB_FLAGS names them;
cells flagged e2e skipped in the quick tier)."""
import os
from pathlib import Path

import pytest
from nbdev import test as nbdev_test

ROOT = Path(__file__).resolve().parents[1]
# kt_nb/notebooks/ holds the parameterized notebooks papermill runs; with their defaults they are quick
NOTEBOOKS = (sorted((ROOT/'nbs').glob('[0-9]*.ipynb')) + sorted((ROOT/'kt_nb'/'notebooks').glob('*.ipynb'))
             + sorted((ROOT/'docs').glob('*/*.ipynb')) + [ROOT/'index.ipynb'])   # docs/: the site's tutorials and lab book


@pytest.mark.parametrize('notebook', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook(notebook, request):
    "Cells flagged `e2e` (whole sweeps) run with the whole suite, and are left out with the end-to-end tests (-m 'not e2e')."
    flags = os.environ.get('KT_NB_FLAGS', '').split()
    quick = 'not e2e' in (request.config.getoption('markexpr') or '')
    skip = [f for f in ('slow', 'gpu') if f not in flags] + (['e2e'] if quick else [])
    ok, seconds = nbdev_test.test_nb(notebook, skip_flags=skip, force_flags=flags)
    assert ok, f"{notebook.name} failed after {seconds:.0f} s (traceback above)"


def test_a_new_task_is_one_short_notebook():
    "The tutorial writes a whole fourth task (its Task, config, hooks, experiment, sweep and ledger views) in under 150 lines of code."
    import json
    cells = json.loads((ROOT/'nbs'/'43_your_task.ipynb').read_text())['cells']
    lines = [l.strip() for c in cells if c['cell_type'] == 'code' for l in ''.join(c['source']).splitlines()]
    code = [l for l in lines if l and not l.startswith('#')]
    assert len(code) < 150, len(code)


def _as_module(name: str, code: str, **names):
    "Run `code` as if it were in module `name`: warnings are attributed to a module by its frames' `__name__`."
    exec(compile(code, f'<{name}>', 'exec'), {'__name__': name, **names})


def test_warnings_caused_by_kt_nb_fail_the_tests():
    """pyproject.toml's filterwarnings: a warning a library pins on kt_nb's code (as pandas, NumPy and torch do, with
    `stacklevel`) is an error, in a module and in a notebook's own cells (`__main__`); one the library pins on itself,
    or on another library, stays a warning, and so does kt_nb's `DataWarning`."""
    import warnings
    from kt_nb.data.storage import DataWarning
    library = {'__name__': 'some_library'}
    exec("import warnings\ndef old_api(): warnings.warn('old_api is deprecated', DeprecationWarning, stacklevel=2)\n"
         "def busy(): warnings.warn('the library talks about itself', UserWarning)", library)
    old_api, busy = library['old_api'], library['busy']
    for ours in ('kt_nb.engine.learner', '__main__'):
        with pytest.raises(DeprecationWarning, match='old_api is deprecated'): _as_module(ours, 'old_api()', old_api=old_api)
    with warnings.catch_warnings(record=True) as caught:   # the filters stay as configured; shown warnings are kept
        _as_module('kt_nb.engine.learner', 'busy()', busy=busy)
        _as_module('another_library', 'old_api()', old_api=old_api)
        _as_module('kt_nb.data.sources', 'warnings.warn("passed over 1 file", DataWarning)', warnings=warnings, DataWarning=DataWarning)
    assert [w.category for w in caught] == [UserWarning, DeprecationWarning, DataWarning], caught
