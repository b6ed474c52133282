"""Each test gets its own folder where tempfile puts things (in this process and in the ones it starts), removed after
the test, failed or not (pytest keeps a failed test's tmp_path): a test run leaves nothing behind. Each of pytest's
workers computes on its share of the cores.

The end-to-end tests are listed here, in one place, and marked `e2e`: `make test-quick` leaves them out
(`pytest -m 'not e2e'`), `make test` runs them with everything else."""
import os
import shutil
import tempfile

import pytest
import torch

# The machine's cores shared among pytest's workers (`-n 2`): each worker, and every process it starts, computes on its
# share. Two workers each using every core spend most of their time waiting on each other (measured on 2 cores: two
# training tests side by side took 170 s with two threads each, 63 s with one).
if 'PYTEST_XDIST_WORKER' in os.environ:   # a worker (the controller computes nothing, and its env reaches the workers)
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ['PYTEST_XDIST_WORKER_COUNT']))
    for _name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_name, str(_threads))   # what it starts
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))   # itself (a plugin may have imported torch already)

# Whole runs: the demo, sweeps of real points (papermill, torchrun, submitit, Slurm), a training process killed and
# resumed, the benches as commands (nbs/44_bench.ipynb runs them in-process), the browser, the documentation site,
# the installed wheel; and the two notebooks outside nbs/ that train (papermill's train.ipynb with its defaults,
# index.ipynb's pair). Each entry is a test module, `module::test` (every case of a parametrized test) or
# `module::test[case]`. The refusals, the in-process checks, every notebook of nbs/ and the notebooks that only read
# results/ stay in the quick tier.
E2E = {
    'test_browser.py', 'test_slurm.py', 'test_install.py', 'test_distributed.py', 'test_resume.py',
    'test_experiment_resume.py',
    'test_pair_gains.py::test_the_verdict_is_computed_on_a_finished_demo',
    'test_pair_gains.py::test_screen_ranks_a_zoo_with_a_fit_on_the_users_sweep',
    'test_docs.py::test_site_pages_exist', 'test_docs.py::test_options_printed_as_typed',
    'test_docs.py::test_api_pages_document_every_public_definition', 'test_docs.py::test_site_in_chromium',
    'test_cli.py::test_demo_quick_writes_metrics', 'test_cli.py::test_bench_prints_its_table_and_writes_json',
    'test_your_data.py::test_bench_loader_on_a_folder',
    'test_sweep.py::test_sweep_killed_halfway_resumes_only_the_rest',
    'test_sweep.py::test_interrupted_sweep_keeps_what_finished_and_continues',
    'test_sweep.py::test_training_notebook_refuses_another_runs_folder',
    'test_sweep.py::test_report_with_nothing_finished_says_so',
    'test_sweep.py::test_sweeps_of_every_task_tabulate_through_the_same_code',
    'test_sweep.py::test_bad_parameter_fails_before_work',
    'test_sweep_launch.py::test_each_running_point_owns_its_gpu',
    'test_sweep_launch.py::test_a_point_on_two_processes_matches_one',
    'test_sweep_launch.py::test_jobs_are_submitted_once_followed_and_requeued',
    'test_your_data.py::test_fashion_mnist_from_a_folder_matches_memory_within_the_seed_spread',
    'test_your_data.py::test_demo_on_a_folder_then_the_explorer_on_its_ledger',
    'test_your_data.py::test_the_papers_imagenet_sweep_on_a_tiny_imagenet_folder',
    'test_your_models.py::test_four_spellings_run_the_demo_and_the_run_records_each_models_weights',
    'test_your_models.py::test_stage1_is_trained_again_when_a_files_weights_change',
    'test_your_models.py::test_a_sweep_reads_a_weights_file_beside_its_spec_and_keys_stage1_by_it',
    'test_tracking.py::test_sigkill_between_checkpoints_then_resume_has_every_point_once',
    'test_tracking.py::test_tensorboard_lists_sweep_points_side_by_side',
    'test_notebooks.py::test_notebook[train.ipynb]', 'test_notebooks.py::test_notebook[index.ipynb]',
    'test_hostile_runs.py::test_a_copy_of_the_data_elsewhere_resumes_the_run_and_shares_its_stage_1',
    'test_hostile_sweeps.py::test_the_demo_prints_a_setting_the_data_capped',
    'test_hostile_sweeps.py::test_the_sweep_table_prints_a_setting_the_data_capped',
}


@pytest.hookimpl(tryfirst=True)   # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        if {module, f"{module}::{getattr(item, 'originalname', item.name)}", f"{module}::{item.name}"} & E2E:
            item.add_marker(pytest.mark.e2e)
    # a renamed test must not slip into the quick tier unnoticed
    modules = {i.path.name: i.module for i in items if getattr(i, 'module', None) is not None}
    stale = [e for e in E2E if '::' in e and e.split('::')[0] in modules
             and not hasattr(modules[e.split('::')[0]], e.split('::')[1].split('[')[0])]
    if stale: raise pytest.UsageError(f"tests/conftest.py's E2E names tests that do not exist: {sorted(stale)}")


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp('tempfile')
    monkeypatch.setenv('TMPDIR', str(folder))
    monkeypatch.setattr(tempfile, 'tempdir', str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
