"""Training you can watch. A run's event file holds every curve point once, also after a SIGKILL between two
checkpoints and a resume; validating every epoch changes no weight; in a Jupyter kernel `fit` draws its curves live.

Run as a script this file is the worker the kill test starts: `python test_tracking.py OUT [--resume] [--hang-after N]`
prints `step N` after every training step and, with `--hang-after`, waits after step N to be killed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from jupyter_client.manager import KernelManager
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from kt_nb.data.load import load_dataset
from kt_nb.data.sets import Augment
from kt_nb.data.storage import load_state
from kt_nb.engine.learner import JointLearner
from kt_nb.engine.ledger import RoleLedger
from kt_nb.engine.models import Participant, Preprocess, participant
from kt_nb.engine.tracking import EVENT_FILE, PLOTLY_JSON, write_hparams


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    "Every scalar of a folder's event files as TensorBoard reads them: tag -> [(step, value)], repeated steps kept."
    reader = EventAccumulator(str(folder), size_guidance={'scalars': 0}, purge_orphaned_data=False)
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()['scalars']}


def worker(out: str, resume: bool, hang_after: int | None):
    "Two epochs of 9 steps: a curve point every 2 steps, a checkpoint every 3, so windows span checkpoints."
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset('digits', n_val=64)
    pair = [participant('test_efficientnet', 10, pretrained=False, img_size=16, label=f'tiny{i}') for i in range(2)]
    learner = JointLearner(pair, data['train'].subset(range(288)), data['val'], epochs=2, lr=1e-3, batch_size=32,
                           augment=Augment(shift=2, flip=False), out=out, checkpoint_every=3, log_every=2,
                           progress=False)
    step = learner.train_step
    def announced_step(x, y, idx, epoch, global_step):
        loss = step(x, y, idx, epoch, global_step)
        print(f'step {global_step}', flush=True)
        if global_step == hang_after: time.sleep(600)   # the test kills it here
        return loss
    learner.train_step = announced_step
    learner.fit(resume=resume)


def start(out: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, str(out), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen):
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


def test_sigkill_between_checkpoints_then_resume_has_every_point_once(tmp_path):
    straight, killed = start(tmp_path/'straight'), start(tmp_path/'killed', '--hang-after', 16)
    for line in killed.stdout:
        if line.strip() == 'step 16':   # 17 steps done: points up to step 16 written, the last checkpoint after 15
            os.kill(killed.pid, signal.SIGKILL)
            break
    _, err = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, err[-3000:]
    _, header = load_state(tmp_path/'killed'/'checkpoint.safetensors', with_metadata=True)
    checkpoint = json.loads(header['kt_nb_checkpoint'])
    assert (checkpoint['epoch'], checkpoint['step']) == (1, 6)
    assert (tmp_path/'killed'/EVENT_FILE).stat().st_size > checkpoint['event_bytes']   # the point at 16: to be dropped
    assert [s for s, _ in read_scalars(tmp_path/'killed')['task_loss/tiny0']][-1] == 16

    finish(start(tmp_path/'killed', '--resume'))
    finish(straight)
    a, b = read_scalars(tmp_path/'straight'), read_scalars(tmp_path/'killed')
    names = ('tiny0', 'tiny1')
    assert sorted(b) == sorted([f'{q}/{n}' for q in ('task_loss', 'taught', 'lr', 'val_acc') for n in names]
                               + ['transfer_loss/total'])
    assert [s for s, _ in b['task_loss/tiny0']] == [2, 4, 6, 8, 9, 10, 12, 14, 16, 18]   # every 2 steps, epoch ends
    assert [s for s, _ in b['val_acc/tiny1']] == [9, 18]
    assert a == b   # each (tag, step) once, with the uninterrupted run's values, bit for bit
    assert [p.name for p in (tmp_path/'killed').glob('*tfevents*')] == [EVENT_FILE]


def dropping(name: str) -> Participant:
    "A linear model behind dropout: its training draws from torch's generator at every step."
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(3 * 8 * 8, 10))
    return Participant(name, model, Preprocess(8))


def test_validating_every_epoch_changes_no_weight(tmp_path):
    "Validation between epochs draws nothing the training sees, and the run ends with torch's generator where it was."
    data = load_dataset('digits', n_val=64)
    def run(eval_every: int):
        torch.manual_seed(0)
        learner = JointLearner([dropping('a'), dropping('b')], data['train'].subset(range(192)), data['val'], epochs=3,
                               lr=1e-2, batch_size=32, augment=Augment(shift=2, flip=True), eval_every=eval_every,
                               out=tmp_path/f'every{eval_every}', progress=False)
        history = learner.fit()
        return learner, history, torch.get_rng_state()
    every, every_history, every_rng = run(1)
    once, once_history, once_rng = run(0)
    validated = ['val_acc_a', 'val_acc_b']
    assert every_history[validated].notna().all().all() and once_history[validated].notna().sum().tolist() == [1, 1]
    for p, q in zip(every.participants, once.participants):
        assert all(torch.equal(x, y) for x, y in zip(p.model.state_dict().values(), q.model.state_dict().values()))
    pd.testing.assert_frame_equal(RoleLedger.read(every.out/'ledger'), RoleLedger.read(once.out/'ledger'))
    pd.testing.assert_frame_equal(every_history.drop(columns=validated), once_history.drop(columns=validated))
    pd.testing.assert_frame_equal(every_history.tail(1), once_history.tail(1))
    assert torch.equal(every_rng, once_rng)
    assert [s for s, _ in read_scalars(every.out)['val_acc/a']] == [6, 12, 18]
    assert [s for s, _ in read_scalars(once.out)['val_acc/a']] == [18]


@pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated")   # TensorBoard's own bleach, on import
def test_tensorboard_lists_sweep_points_side_by_side(tmp_path):
    "TensorBoard's HParams tab, as its plugin answers it for `tensorboard --logdir SWEEP`: a row per point."
    from google.protobuf import json_format
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, hparams_plugin, list_session_groups
    for lr, acc in ((1e-3, 0.81), (1e-4, 0.78)):
        settings = {'lr': lr, 'method': 'bikd', 'stage1_dir': None, 'models': ['a', 'b']}
        write_hparams(tmp_path/f'lr={lr}', settings, {'acc/a': acc})
    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(tmp_path)); runs.Reload()
    provider = data_provider.MultiplexerDataProvider(runs, str(tmp_path))
    plugin = hparams_plugin.HParamsPlugin(base_plugin.TBContext(logdir=str(tmp_path), multiplexer=runs,
                                                                data_provider=provider))
    request = json_format.ParseDict({'startIndex': 0, 'sliceSize': 10, 'allowedStatuses': ['STATUS_SUCCESS'],
                                     'colParams': [{'hparam': 'lr'}, {'metric': {'tag': 'acc/a'}}]},
                                    api_pb2.ListSessionGroupsRequest())
    groups = list_session_groups.Handler(context.RequestContext(), plugin._context, '', request).run().session_groups
    rows = {g.name: ({k: json_format.MessageToDict(v) for k, v in g.hparams.items()},
                     [round(m.value, 4) for m in g.metric_values]) for g in groups}
    assert rows == {'lr=0.001': ({'lr': 1e-3, 'method': 'bikd', 'stage1_dir': 'none', 'models': '["a", "b"]'}, [0.81]),
                    'lr=0.0001': ({'lr': 1e-4, 'method': 'bikd', 'stage1_dir': 'none', 'models': '["a", "b"]'}, [0.78])}


KERNEL_CODE = """
import torch
from kt_nb.data.load import load_dataset
from kt_nb.engine.learner import JointLearner
from kt_nb.engine.models import participant
torch.set_num_threads(1); torch.manual_seed(0)
data = load_dataset('digits', n_val=32)
pair = [participant('test_efficientnet', 10, pretrained=False, img_size=16, label=f'tiny{i}') for i in range(2)]
JointLearner(pair, data['train'].subset(range(64)), data['val'], epochs=3, batch_size=32, progress=True).fit();
"""


def kernel_messages(code: str) -> list[dict]:
    "The iopub messages a fresh Jupyter kernel sends while it runs `code` (jupyter_client starts it with this Python)."
    manager = KernelManager(kernel_name='python3')
    manager.start_kernel()
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        asked, messages = client.execute(code), []
        while True:
            message = client.get_iopub_msg(timeout=120)
            if message['parent_header'].get('msg_id') != asked: continue
            messages.append(message)
            if message['msg_type'] == 'status' and message['content']['execution_state'] == 'idle': return messages
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_fit_in_a_kernel_draws_live_curves():
    messages = kernel_messages(KERNEL_CODE)
    errors = [m['content']['traceback'] for m in messages if m['msg_type'] == 'error']
    assert not errors, '\n'.join(errors[0])
    shown = [m for m in messages if m['msg_type'] in ('display_data', 'update_display_data')]
    figures = [(m['msg_type'], m['content']['transient'].get('display_id'), m['content']['data'][PLOTLY_JSON])
               for m in shown if PLOTLY_JSON in m['content']['data']]   # the progress bar is a widget
    assert [kind for kind, _, _ in figures] == ['display_data'] + ['update_display_data'] * 3
    assert figures[0][1] and len({display for _, display, _ in figures}) == 1   # one figure, redrawn in place
    names = [t['name'] for t in figures[0][2]['data']]
    assert names == ['tiny0', 'tiny0', 'tiny1', 'tiny1', 'transfer']   # loss and validation per participant, transfer
    assert [[len(t['x']) for t in figure['data']] for _, _, figure in figures] == [[n] * 5 for n in range(4)]


if __name__ == '__main__':
    hang = sys.argv[sys.argv.index('--hang-after') + 1] if '--hang-after' in sys.argv else None
    worker(sys.argv[1], '--resume' in sys.argv, int(hang) if hang else None)
