"""Suite-wide settings.

One intra-op thread for torch: the suite's tensors are small, so a second OpenMP thread buys nothing and,
when anything else holds the other core, its spin-waits make a pass ten to thirty times slower
(resnet1202 forward + backward on 2×3×8×8: 0.8 s of CPU with one thread, 21 s with two under load).
Tests that exercise thread settings set and restore their own.
"""

import torch

torch.set_num_threads(1)
