"""The default learning rates, defined once (without torch): `train`'s help (options.py), the device defaults
and the experiments (config.py) all take them from here, so the command line and the Training lab train alike.

lr 0.05 for the CPU's batch 32: the paper's 0.1 is for batch 128, and at 0.1 ResNet-56 blew up on the digits
(see config.py). The batch-norm experiment runs at 0.02 so that its nets without batch norm can learn at all.
"""

CPU_LR = 0.05  # the CPU default (batch 32)
GPU_LR = 0.1  # the GPU default (batch 128, the paper's)
BATCHNORM_LR = 0.02  # the batchnorm experiment
