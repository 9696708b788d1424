"""ONNX's own backend test cases (the node cases and the pytorch-converted cases shipped in
the onnx package) through pyprune: every case that touches a supported op either imports
and matches the expected outputs within the case's own tolerance, or is rejected with a
ModelError that names what is unsupported (1-D / 3-D tensors, other data types, other ops).
Nothing imported may give a wrong answer."""

import collections

import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed")

from pyprune.converters.onnx_ops import CONVERTERS  # noqa: E402

from .onnx_backend import node_cases, pytorch_converted_cases, run_case  # noqa: E402

NODE = [c for c in node_cases() if {n.op_type for n in c[1].graph.node} & set(CONVERTERS)]
PYTORCH = pytorch_converted_cases()
RESULTS = {}

# Cases that must import and pass (regression guard; README lists the counts per op).
MUST_PASS = {
    "node": {"averagepool": 12, "batchnorm": 2, "basic_conv": 2, "conv_with": 4, "flatten": 3, "gemm": 8,
             "globalaveragepool": 2, "globalmaxpool": 2, "lrn": 2, "maxpool": 10, "softmax": 2, "concat": 2,
             "matmul": 1, "identity": 1},
    "pytorch": {"Conv2d": 11, "AvgPool2d": 2, "BatchNorm2d": 2, "Linear": 2, "MaxPool2d": 1, "ReLU": 1,
                "Sigmoid": 1, "Softmax": 1, "softmax": 1},
}


@pytest.mark.parametrize("case", NODE + PYTORCH, ids=[c[0] for c in NODE + PYTORCH])
def test_backend_case(case):
    name, model, data_sets, rtol, atol = case
    failures = run_case(model, data_sets, rtol, atol)
    RESULTS[name] = failures
    assert not failures, failures


def test_the_claimed_cases_pass():
    total = 0
    for kind, cases in (("node", NODE), ("pytorch", PYTORCH)):
        passed = collections.Counter()
        for name, model, data_sets, rtol, atol in cases:
            failures = RESULTS[name] if name in RESULTS else run_case(model, data_sets, rtol, atol)
            if failures == []:
                total += 1
                for prefix in MUST_PASS[kind]:
                    if name.removeprefix("test_").startswith(prefix):
                        passed[prefix] += 1
        for prefix, count in MUST_PASS[kind].items():
            assert passed[prefix] >= count, f"{kind} cases {prefix}*: {passed[prefix]} pass, expected {count}"
    assert total >= 92, f"{total} backend cases pass, 92 did when the README's table was made"
