"""One small transfer run, alone or as one of several torchrun processes: `python distributed_worker.py OUT`.

Two models without batch norm (a ViT and a GroupNorm EfficientNet), so that a run split over processes
computes the same thing as a run in one process with the same global batch. The models run in float64:
see the test for why."""
import sys

import torch

from kt_nb.data.load import load_dataset
from kt_nb.engine.learner import JointLearner
from kt_nb.engine.models import participant


def main(out: str):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset('digits', n_val=100)
    pair = [participant('test_vit', 10, pretrained=False, img_size=32, label='vit'),
            participant('test_efficientnet_gn', 10, pretrained=False, img_size=32, label='effnet')]
    for p in pair: p.model.double(); p.preprocess.double()
    learner = JointLearner(pair, data['train'].subset(range(256)), data['val'], method='bikd', epochs=2, lr=1e-3,
                           batch_size=32, out=out, checkpoint_every=3, progress=False,
                           channels_last=False)   # the layout the bounds in the test were measured with
    history = learner.fit()
    if learner.rank == 0: (learner.out/'history.json').write_text(history.to_json())


if __name__ == '__main__':
    main(sys.argv[1])
