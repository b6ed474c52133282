"""A small deterministic transfer run for the kill-and-resume test: `python resume_worker.py OUT [--resume]`.
Ten steps an epoch: enough to be killed twice mid-epoch, between two checkpoints.

Prints `step N` after every step so the test knows where the run is; writes `history.json` at the end."""
import json
import sys
import time

import torch

from kt_nb.data.sets import Augment
from kt_nb.data.load import load_dataset
from kt_nb.engine.learner import JointLearner
from kt_nb.engine.models import participant


def main(out: str, resume: bool):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset('digits', n_val=100)
    pair = [participant('test_efficientnet', 10, pretrained=False, img_size=16, label=f'tiny{i}') for i in range(2)]
    learner = JointLearner(pair, data['train'].subset(range(320)), data['val'], method='bikd', epochs=3, lr=1e-3,
                           batch_size=32, augment=Augment(shift=2, flip=False), out=out, checkpoint_every=3, progress=False)
    step = learner.train_step
    def announced_step(x, y, idx, epoch, global_step):
        loss = step(x, y, idx, epoch, global_step)
        print(f'step {global_step}', flush=True)
        time.sleep(0.03)   # slow enough for the test to kill it where it wants
        return loss
    learner.train_step = announced_step
    print(f'steps per epoch {learner.steps_per_epoch}', flush=True)
    history = learner.fit(resume=resume)
    (learner.out/'history.json').write_text(history.to_json())


if __name__ == '__main__':
    main(sys.argv[1], '--resume' in sys.argv)
