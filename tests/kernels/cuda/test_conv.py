"""CUDA Conv2d and GatedConv2d: the CPU twins' checks (tests/kernels/cpu/test_conv.py)."""

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
