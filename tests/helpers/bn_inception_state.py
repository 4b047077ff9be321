"""TSN-format BN-Inception state dicts written from the paper (Ioffe & Szegedy 2015, Fig. 5; TSN's bn_inception.yaml).

The tables are independent of `stpa.blocks.backbones.bn_inception`; they are shared by the BN-Inception architecture
tests and the weight-conversion tests.
"""

import math

import numpy as np

# Inception modules: (name, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool proj (0: pass through),
# stride). Fig. 5 of Ioffe & Szegedy.
PUBLISHED_MODULES = [
    ("inception_3a", 64, 64, 64, 64, 96, 32, 1),
    ("inception_3b", 64, 64, 96, 64, 96, 64, 1),
    ("inception_3c", 0, 128, 160, 64, 96, 0, 2),
    ("inception_4a", 224, 64, 96, 96, 128, 128, 1),
    ("inception_4b", 192, 96, 128, 96, 128, 128, 1),
    ("inception_4c", 160, 128, 160, 128, 160, 128, 1),
    ("inception_4d", 96, 128, 192, 160, 192, 128, 1),
    ("inception_4e", 0, 128, 192, 192, 256, 0, 2),
    ("inception_5a", 352, 192, 320, 160, 224, 128, 1),
    ("inception_5b", 352, 192, 320, 192, 224, 128, 1),
]


def published_convolutions(in_channels=3):
    """[(TSN module name, in channels, out channels, kernel size)] of every convolution, in network order."""
    convs = [("conv1_7x7_s2", in_channels, 64, 7), ("conv2_3x3_reduce", 64, 64, 1), ("conv2_3x3", 64, 192, 3)]
    channels = 192
    for name, c1, r3, c3, rd, cd, proj, _stride in PUBLISHED_MODULES:
        if c1:
            convs.append((f"{name}_1x1", channels, c1, 1))
        convs += [(f"{name}_3x3_reduce", channels, r3, 1), (f"{name}_3x3", r3, c3, 3)]
        convs += [
            (f"{name}_double_3x3_reduce", channels, rd, 1),
            (f"{name}_double_3x3_1", rd, cd, 3),
            (f"{name}_double_3x3_2", cd, cd, 3),
        ]
        if proj:
            convs.append((f"{name}_pool_proj", channels, proj, 1))
        channels = c1 + c3 + cd + (proj if proj else channels)
    assert channels == 1024
    return convs


def tsn_state_dict(in_channels=3, include_fc=True, seed=0, prefix=""):
    """A random state dict with the key names and shapes of TSN's bn_inception-9f5701afb96c8044.pth."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, cin, cout, k in published_convolutions(in_channels):
        state[f"{prefix}{name}.weight"] = rng.normal(scale=math.sqrt(2.0 / (cin * k * k)), size=(cout, cin, k, k))
        state[f"{prefix}{name}.bias"] = rng.normal(scale=0.1, size=(cout,))
        state[f"{prefix}{name}_bn.weight"] = rng.uniform(0.5, 1.5, size=(cout,))
        state[f"{prefix}{name}_bn.bias"] = rng.normal(scale=0.1, size=(cout,))
        state[f"{prefix}{name}_bn.running_mean"] = rng.normal(scale=0.1, size=(cout,))
        state[f"{prefix}{name}_bn.running_var"] = rng.uniform(0.5, 2.0, size=(cout,))
    if include_fc:
        state[f"{prefix}fc.weight"] = rng.normal(scale=0.01, size=(1000, 1024))
        state[f"{prefix}fc.bias"] = np.zeros(1000)
    return {key: value.astype(np.float32) for key, value in state.items()}
