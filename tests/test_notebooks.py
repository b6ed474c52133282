"Every notebook runs top to bottom and its tests pass (cells flagged slow/gpu skipped unless KT_NB_FLAGS names them)."
import os
from pathlib import Path

import pytest
from nbdev import test as nbdev_test

ROOT = Path(__file__).resolve().parents[1]
# kt_nb/notebooks/ holds the parameterized notebooks papermill runs; with their defaults they are quick
NOTEBOOKS = sorted((ROOT/'nbs').glob('[0-9]*.ipynb')) + sorted((ROOT/'kt_nb'/'notebooks').glob('*.ipynb')) + [ROOT/'index.ipynb']


@pytest.mark.parametrize('notebook', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook(notebook):
    flags = os.environ.get('KT_NB_FLAGS', '').split()
    ok, seconds = nbdev_test.test_nb(notebook, skip_flags=[f for f in ('slow', 'gpu') if f not in flags], force_flags=flags)
    assert ok, f"{notebook.name} failed after {seconds:.0f} s (traceback above)"


def test_a_new_task_is_one_short_notebook():
    "The tutorial writes a whole fourth task (its Task, config, hooks, experiment, sweep and ledger views) in under 150 lines of code."
    import json
    cells = json.loads((ROOT/'nbs'/'11_your_task.ipynb').read_text())['cells']
    lines = [l.strip() for c in cells if c['cell_type'] == 'code' for l in ''.join(c['source']).splitlines()]
    code = [l for l in lines if l and not l.startswith('#')]
    assert len(code) < 150, len(code)
