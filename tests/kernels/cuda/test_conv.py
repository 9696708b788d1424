"""CUDA Conv2d and GatedConv2d: the CPU twins' checks (tests/kernels/cpu/test_conv.py)."""

import numpy as np
import pytest
from hypothesis import given

from ..cpu.test_conv import (check_conv2d, check_gated_conv2d, check_threshold_override, conv_cases,
                             gated_cases)
from .device import ON_CUDA, SIMULATED


@SIMULATED
@given(conv_cases())
def test_conv2d_matches_reference(case):
    check_conv2d(case, ON_CUDA)


@SIMULATED
@given(conv_cases(depthwise=True))
def test_depthwise_conv2d_matches_reference(case):
    check_conv2d(case, ON_CUDA)


@SIMULATED
@given(gated_cases())
def test_gated_conv2d_is_masked_dense_conv(case):
    check_gated_conv2d(case, ON_CUDA)


def test_threshold_override_turns_gates_off_and_on():
    check_threshold_override(ON_CUDA)


@pytest.mark.parametrize("extra", [-2, -1, 0, 1, 6])
@pytest.mark.parametrize("per_thread", [1, 3])
def test_compact_lists_active_then_inactive_channels_in_order(per_thread, extra):
    """The listing (listing.py) splits a sample's channels into one run per thread: fewer
    channels than threads, runs of equal and unequal length, and the inactive channels
    placed after all of the sample's active ones."""
    from pyprune.kernels.cuda.listing import THREADS, launch_compact
    dev = ON_CUDA.device
    channels = max(1, per_thread * THREADS + extra)
    rng = np.random.default_rng(channels)
    mask = rng.random((3, channels)) < 0.4
    mask[1] = True   # every channel active
    mask[2] = False  # none
    kernel, _ = ON_CUDA.kernel("Conv2d", {"out_channels": channels, "kernel_size": (1, 1)},
                               {"weight": np.ones((channels, 1, 1, 1), np.float32),
                                "bias": np.zeros(channels, np.float32)}, [(1, 2, 2)])
    order, n_act = kernel.buffer("order", mask.shape, np.int32), kernel.buffer("n_act", (3,), np.int32)
    launch_compact(kernel, dev.to_device(mask), order, n_act)
    order, n_act = dev.to_host(order), dev.to_host(n_act)
    for s in range(3):
        on, off = np.flatnonzero(mask[s]), np.flatnonzero(~mask[s])
        assert n_act[s] == len(on)
        assert np.array_equal(order[s], np.concatenate([on, off]))
