"""Training: small networks trained side by side on the same batches, on one process or on several (torchrun).

- data.py, cifar.py: the data sets (digits, synthetic shapes, CIFAR-10 read through one gate below a data folder)
- config.py, recipe.py, options.py: the settings, the experiments, He et al.'s recipe, the `train` options (once)
- run.py (TrainingRun, make_run): the training loop; session.py (TrainSession, ProgressReader): a run with its
  progress file, checkpoints and outputs, for the command line, the app and torchrun's workers alike
- memory.py, lifecycle.py, distributed.py: admission by memory, processes that end with their run, DDP
- results.py, report.py, story.py: what a run gives back, its table, and the sentences computed from it

Import from the modules (`from resnet_core.training.run import make_run`): they import torch, so this package
stays light for the command line's start.
"""
