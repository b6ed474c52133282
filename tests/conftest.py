"Each test gets its own folder where tempfile puts things (in this process and in the ones it starts), removed after the test, failed or not (pytest keeps a failed test's tmp_path): a test run leaves nothing behind."
import os
import shutil
import tempfile

import pytest


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp('tempfile')
    monkeypatch.setenv('TMPDIR', str(folder))
    monkeypatch.setattr(tempfile, 'tempdir', str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
