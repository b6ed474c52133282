"""A small experiment of one task for the kill-and-resume test: `python experiment_worker.py TASK OUT`.

Prints `<run folder> step N of M` after every training step (stage 1 and every arm), so the test knows where the
run is."""
import sys
import time

import torch

from kt_nb.engine.learner import JointLearner
from kt_nb.experiment.runner import run_experiment


def experiment(task: str):
    "The task's hooks and a config small enough for seconds, with several steps per arm."
    if task == 'classification':
        from kt_nb.classification.experiment import ClassificationConfig, classification_experiment
        tiny = [['test_resnet:scratch', 'test_efficientnet:scratch']]
        cfg = ClassificationConfig(groups=tiny, methods=['bikd'], dataset='digits', n_train=192, n_val=32, n_test=64, img_size=16,
                         batch_size=32, stage1_epochs=1, epochs=2, seeds=1)
        return classification_experiment, cfg
    if task == 'segmentation':
        from kt_nb.segmentation.experiment import SegmentationConfig, segmentation_experiment
        cfg = SegmentationConfig.quick(n_train=48, n_test=16, batch_size=8, epochs=2, methods=['bikd:gt_confidence'])
        return segmentation_experiment, cfg
    from kt_nb.saliency.experiment import SaliencyConfig, saliency_experiment
    cfg = SaliencyConfig.quick(n_train_videos=4, frames_per_video=5, batch_size=4, epochs=2, methods=['bikd:task_loss'])
    return saliency_experiment, cfg


def main(task: str, out: str):
    torch.set_num_threads(1)
    step = JointLearner.train_step
    def announced_step(self, x, y, idx, epoch, global_step):
        loss = step(self, x, y, idx, epoch, global_step)
        folder = self.out.name if self.out else 'stage1'
        print(f"{folder} step {global_step} of {self.epochs * self.steps_per_epoch}", flush=True)
        time.sleep(0.02)   # slow enough for the test to kill it where it wants
        return loss
    JointLearner.train_step = announced_step
    hooks, cfg = experiment(task)
    run_experiment(hooks, cfg, out, progress=False, checkpoint_every=2)


if __name__ == '__main__':
    main(*sys.argv[1:3])
