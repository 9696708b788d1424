"""Whole networks on the engine against the float64 NumPy reference: dense, gated with
natural, all, none and one-active masks, batches with different masks, stats and the
threshold knob."""

import numpy as np
import pytest

import pyprune
from pyprune import models
from pyprune.graph import Model, Node
from pyprune.ops.conv import gate_cut
from pyprune.reference import run_reference

from .helpers import assert_matches


def images(model, n, seed=0):
    shape = model.inputs["input"]
    rng = np.random.default_rng(seed)
    # Per-image brightness and contrast so that gates see different inputs.
    return (rng.normal(size=(n, *shape)) * rng.uniform(0.2, 2.0, (n, 1, 1, 1))
            + rng.normal(0, 1, (n, shape[0], 1, 1))).astype(np.float32)


def set_gate_biases(model, pattern, seed=0):
    """Force every gate into a pattern with +-50 biases and near-zero gate weights."""
    rng = np.random.default_rng(seed)
    for node in model.nodes:
        if node.op == "GatedConv2d":
            g = node.weights["gate_bias"].shape[0]
            on = {"all": np.ones(g, bool), "none": np.zeros(g, bool),
                  "one": np.arange(g) == rng.integers(g)}[pattern]
            node.weights["gate_bias"] = np.where(on, 50.0, -50.0).astype(np.float32)
            node.weights["gate_weight"] *= np.float32(1e-3)
    return model


def check_against_reference(model, x, threshold=None, sess=None):
    sess = sess or pyprune.Session(model)
    y, stats = sess.run_with_stats(x, threshold=threshold)
    (expected,), masks = (lambda o, m: (list(o.values()), m))(*run_reference(model, {"input": x}, threshold))
    engine_masks = {l.name: l for l in stats.layers if l.gated}
    for name, m in masks.items():
        assert (engine_masks[name].active == m.sum(axis=1)).all(), f"gate decisions of {name} differ"
    assert_matches(y, expected)
    return sess, y, stats, masks


@pytest.mark.parametrize("build", [models.tiny_net, models.resnet_block])
@pytest.mark.parametrize("gated", [False, True])
def test_network_matches_reference(build, gated, conv_path):
    model = build(gated=gated)
    check_against_reference(model, images(model, 3))


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("pattern", ["all", "none", "one"])
def test_gated_patterns_match_reference(pattern, batch):
    model = set_gate_biases(models.tiny_net(), pattern)
    _, y, stats, _ = check_against_reference(model, images(model, batch))
    for layer in stats.layers:
        if layer.gated:
            group_size = model.node(layer.name).attrs.get("group_size", 1)
            want = {"all": layer.kernels, "none": 0, "one": group_size}[pattern]
            assert (layer.active == want).all(), layer.name


def test_gated_squeezenet_matches_reference_batch_8_with_different_masks(conv_path):
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    x = images(model, 8)
    models.calibrate_gates(model, x, 0.5)
    _, y, stats, masks = check_against_reference(model, x)
    distinct = {m.tobytes() for m in masks["fire5/expand3x3"]}
    assert len(distinct) > 1, "the samples should take different paths"


def test_batch_equals_each_sample_alone(conv_path):
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    x = images(model, 8, seed=3)
    models.calibrate_gates(model, x, 0.4)
    sess = pyprune.Session(model)
    batched, stats = sess.run_with_stats(x)
    for i in range(8):
        alone, s1 = sess.run_with_stats(x[i:i + 1])
        assert_matches(alone, batched[i:i + 1], tol=1e-6)
        for lb, la in zip(stats.layers, s1.layers):
            assert lb.active[i] == la.active[0] and lb.executed_macs[i] == la.executed_macs[0]


def expected_macs(model, masks, info):
    """Executed MACs per sample implied by the reference masks and the live-channel rules,
    worked out here independently of the engine's kernels."""
    n = next(iter(masks.values())).shape[0]
    live = {t: np.ones((n, s[0]), bool) for t, s in model.inputs.items()}
    total = np.zeros(n, np.int64)
    for node in info.order:
        a, x = info.attrs[node.name], node.inputs
        out_shape = info.shapes[node.outputs[0]]
        if node.op in ("Conv2d", "GatedConv2d"):
            active = masks[node.name] if node.op == "GatedConv2d" else np.ones((n, out_shape[0]), bool)
            g, cin = a["groups"], info.shapes[x[0]][0]
            lg = live[x[0]].reshape(n, g, -1).sum(2)
            ag = active.reshape(n, g, -1).sum(2)
            total += (lg * ag).sum(1) * np.prod(a["kernel_size"]) * out_shape[1] * out_shape[2]
            if node.op == "GatedConv2d":
                h, groups = a["gate_hidden"], a["out_channels"] // a["group_size"]
                total += h * cin + groups * (h or cin)
            live[node.outputs[0]] = active if node.op == "GatedConv2d" else np.ones_like(active)
        elif node.op == "Linear":
            total += live[x[0]].sum(1) * a["out_features"]
            live[node.outputs[0]] = np.ones((n, out_shape[0]), bool)
        elif node.op == "Concat":
            live[node.outputs[0]] = np.concatenate([live[t] for t in x], 1)
        elif node.op == "Flatten":
            live[node.outputs[0]] = np.repeat(live[x[0]], out_shape[0] // live[x[0]].shape[1], 1)
        else:  # relu, pools, dropout in these nets: same as input
            live[node.outputs[0]] = live[x[0]]
    return total


def test_stats_count_exactly_the_macs_the_masks_imply():
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    x = images(model, 4)
    models.calibrate_gates(model, x, 0.5)
    _, _, stats, masks = check_against_reference(model, x)
    assert (stats.executed_macs == expected_macs(model, masks, pyprune.analyze(model))).all()
    dense = pyprune.Session(models.squeezenet1_1(image_size=64, num_classes=20)).run_with_stats(x)[1]
    assert stats.dense_macs == dense.dense_macs == dense.executed_macs[0]
    assert 0.2 < stats.executed_fraction.mean() < 0.6


def test_threshold_zero_runs_the_dense_network():
    gated = models.tiny_net(gated=True, seed=5)
    plain = Model(gated.inputs, gated.outputs, [
        Node(n.name, "Conv2d", n.inputs, n.outputs,
             {k: v for k, v in n.attrs.items() if k not in ("group_size", "gate_pool", "gate_hidden", "threshold")},
             {k: v for k, v in n.weights.items() if not k.startswith("gate")}) if n.op == "GatedConv2d" else n
        for n in gated.nodes])
    x = images(gated, 2)
    assert_matches(pyprune.Session(gated).run(x, threshold=0.0), pyprune.Session(plain).run(x), tol=1e-6)
    check_against_reference(gated, x, threshold=0.7)


def test_per_node_threshold_and_compute_budget():
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    x = images(model, 2)
    models.calibrate_gates(model, x, 0.5)
    sess = pyprune.Session(model)
    fractions = [sess.run_with_stats(x, threshold=t)[1].executed_fraction.mean() for t in (0.2, 0.5, 0.8)]
    assert fractions[0] > fractions[1] > fractions[2]
    _, s = sess.run_with_stats(x, threshold={"fire2/squeeze": 1.0})
    layer = next(l for l in s.layers if l.name == "fire2/squeeze")
    assert (layer.active == 0).all()


def test_calibration_hits_the_requested_fraction():
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    x = images(model, 8)
    models.calibrate_gates(model, x, 0.25)
    _, stats = pyprune.Session(model).run_with_stats(x)
    for layer in stats.layers:
        if layer.gated:  # exactly a quarter of the 8 x kernels decisions (group size 1)
            assert layer.active.sum() == round(0.25 * 8 * layer.kernels), layer.name


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, float("nan")])
def test_calibration_refuses_a_fraction_outside_0_to_1(fraction):
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    with pytest.raises(pyprune.InputError, match="active_fraction must be in \\(0, 1\\]"):
        models.calibrate_gates(model, images(model, 2), fraction)


def test_calibration_puts_the_cut_between_logits():
    """No calibration logit on the cut: np.quantile gives one exactly there wherever its
    index is whole (0.6 of 96 values here), and its decision then hung on the last bits."""
    z = np.random.default_rng(0).normal(size=(6, 16))
    cut = models._cut_between(z, 0.4)
    assert (z > cut).sum() == round(0.4 * 96) and np.abs(z - cut).min() > 0
    below, above = z[z < cut].max(), z[z > cut].min()
    assert cut == 0.5 * (below + above)
    assert (z > models._cut_between(z, 0.001)).sum() == 0 and (z > models._cut_between(z, 0.999)).sum() == 96


def test_several_outputs_come_back_by_name():
    model = models.tiny_net(gated=False)
    model.outputs = ["conv1", "fc"]
    out = pyprune.Session(model).run(images(model, 1))
    assert set(out) == {"conv1", "fc"} and out["fc"].shape == (1, 10)


def test_gate_cut_is_the_logit():
    assert gate_cut(0.5) == 0.0 and gate_cut(0.0) == -np.inf and gate_cut(1.0) == np.inf
    assert abs(1 / (1 + np.exp(-gate_cut(0.8))) - 0.8) < 1e-12


@pytest.mark.parametrize("gated", [False, True])
def test_fused_relu_and_concat_buffers_match_reference(gated, conv_path):
    """Grouped and plain convs (gated or not), each ReLU'd, writing into one concat buffer;
    a ReLU output that is also a graph output; a conv read twice by the concat (no buffer)."""
    b = models.GraphBuilder("fusions", (4, 9, 9), seed=3)
    g = {} if gated else None
    left = b.op("Relu", b.conv("input", 6, 3, padding=1, groups=2, gate=g, name="grouped"), name="left")
    right = b.op("Relu", b.conv("input", 4, 1, gate=g, name="pointwise"), name="right")
    cat = b.op("Concat", left, right, name="cat")
    twice = b.op("Concat", cat, cat, name="twice")
    model = b.build([twice, right])
    sess = pyprune.Session(model)
    assert any(s.into for s in sess._steps) and any(s.assemble for s in sess._steps)
    x = images(model, 3)
    out = sess.run(x)
    expected, _ = run_reference(model, {"input": x})
    for name in ("twice", "right"):
        assert_matches(out[name], expected[name])


@pytest.mark.parametrize("gated, threshold", [(False, None), (True, None), (True, 0.3), (True, 0.7)])
def test_lean_steps_give_the_general_loops_bits(gated, threshold):
    """run() on the CPU at one thread takes the lean program (lean_steps.py); run_with_stats
    the general loop: the same outputs, bit for bit, on concat buffers, gated convs, a pool
    finishing its conv and several outputs, over calls with different images."""
    b = models.GraphBuilder("lean", (4, 9, 9), seed=7)
    g = {} if gated else None
    squeeze = b.op("Relu", b.conv("input", 6, 1, gate=g, name="squeeze"), name="relu_s")
    left = b.op("Relu", b.conv(squeeze, 5, 1, gate=g, name="e1"), name="relu_1")
    right = b.op("Relu", b.conv(squeeze, 7, 3, padding=1, gate=g, name="e3"), name="relu_3")
    cat = b.op("Concat", left, right, name="cat")
    pooled = b.op("MaxPool2d", b.op("Relu", b.conv(cat, 8, 3, name="conv"), name="relu_c"), name="pool",
                  kernel_size=(2, 2), stride=(2, 2))
    model = b.build([pooled, right])
    sess = pyprune.Session(model)
    for seed in range(3):
        x = images(model, 2, seed=seed)
        lean = sess.run(x, threshold=threshold)
        general, _ = sess.run_with_stats(x, threshold=threshold)
        for name in ("pool", "relu_3"):
            np.testing.assert_array_equal(lean[name], general[name])
    assert sess._lanes[0].lean is not None  # the lean program ran


def test_an_expand_the_caller_also_reads_keeps_its_own_array():
    """An expand whose ReLU is a graph output as well as the concat's input does not write
    into the (reused) concat buffer: an array a call returned keeps its values after the next
    call."""
    b = models.GraphBuilder("seen", (8, 10, 10), seed=5)
    s = b.op("Relu", b.conv("input", 6, 1, gate={}, name="squeeze"), name="relu_s")
    left = b.op("Relu", b.conv(s, 5, 1, gate={}, name="e1"), name="relu_1")
    right = b.op("Relu", b.conv(s, 7, 3, padding=1, gate={}, name="e3"), name="relu_3")
    cat = b.op("Concat", left, right, name="cat")
    model = b.build([b.op("Relu", b.conv(cat, 4, 1, name="head"), name="out"), right])
    sess = pyprune.Session(model)
    first = sess.run(images(model, 1, seed=0))
    kept = {name: a.copy() for name, a in first.items()}
    sess.run(images(model, 1, seed=1))
    for name in kept:
        np.testing.assert_array_equal(first[name], kept[name])


@pytest.mark.parametrize("gated", [False, True])
def test_max_pool_finishes_the_conv_it_alone_reads(gated, conv_path):
    """conv -> ReLU -> max pool: the pool adds the bias and applies the ReLU (padding and
    ceil mode included); a conv whose output something else also reads keeps its epilogue."""
    b = models.GraphBuilder("pool_epilogue", (3, 11, 11), seed=5)
    g = {} if gated else None
    a = b.op("Relu", b.conv("input", 6, 3, padding=1, gate=g, name="alone"), name="relu_a")
    pooled = b.op("MaxPool2d", a, name="pool_a", kernel_size=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1),
                  ceil_mode=True)
    shared = b.conv("input", 6, 3, padding=1, name="shared")
    pooled_shared = b.op("MaxPool2d", shared, name="pool_shared", kernel_size=(2, 2), stride=(2, 2))
    model = b.build([pooled, pooled_shared, b.op("Relu", shared, name="also_reads")])
    sess = pyprune.Session(model)
    kernels = {s.node.name: s.kernel for s in sess._steps}
    assert kernels["pool_a"].epilogue is not None and kernels["pool_a"].epilogue[1] is True
    assert kernels["pool_shared"].epilogue is None
    x = images(model, 3)
    out = sess.run(x)
    expected, _ = run_reference(model, {"input": x})
    for name in out:
        assert_matches(out[name], expected[name])


def test_reused_buffers_give_each_call_its_own_answer(conv_path):
    """Convs and concat buffers the caller never sees keep their buffers across calls, and a
    gated conv then zeroes only the rows it wrote last time: a run of different images,
    thresholds and batch sizes through one session must each match the reference."""
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    x = images(model, 6, seed=7)
    models.calibrate_gates(model, x, 0.4)
    sess = pyprune.Session(model)
    kernels = {s.node.name: s.kernel for s in sess._steps}
    assert kernels["fire2/squeeze"].reuse_output and kernels["fire2/concat"].reuse_output
    assert kernels["fire2/expand3x3"].track_zero_rows and not kernels["fire2/expand3x3"].reuse_output
    for batch, threshold in ((x[:1], None), (x[1:2], 0.3), (x[:1], 0.7), (x[2:5], None), (x[5:6], None)):
        check_against_reference(model, batch, threshold, sess)


def test_cpu_convs_share_one_workspace(conv_path):
    """Every CPU conv of a session works in the same buffers (plan._shared_workspace), two
    sessions of one model do not, and both still match the reference on a batch whose
    samples take different paths."""
    model = models.squeezenet1_1(gated=True, image_size=64, num_classes=20)
    x = images(model, 4, seed=11)
    models.calibrate_gates(model, x, 0.5)
    first, second = pyprune.Session(model), pyprune.Session(model)
    convs = [s.kernel for s in first._steps if s.node.op in ("Conv2d", "GatedConv2d")]
    assert len(convs) == 26
    for buf in ("cols_buf", "w_buf", "y_buf"):
        assert all(np.shares_memory(getattr(k, buf), getattr(convs[0], buf)) for k in convs), buf
        other = next(s.kernel for s in second._steps if s.node.op == "Conv2d")
        assert not np.shares_memory(getattr(other, buf), getattr(convs[0], buf)), buf
    for sess in (first, second):
        check_against_reference(model, x, None, sess)


@pytest.mark.parametrize("tail", ["Dropout", "Flatten"])
def test_outputs_reached_through_views_are_not_reused(tail):
    """A conv whose output reaches the caller through Dropout or Flatten (which return
    their input's memory) writes a fresh array each call: a result the caller keeps does
    not change when the session runs again."""
    b = models.GraphBuilder("alias", (3, 6, 6), seed=2)
    y = b.op("Relu", b.conv("input", 4, 3, padding=1, gate={}, name="gated"), name="relu")
    model = b.build([b.op(tail, y, name="tail")])
    sess = pyprune.Session(model)
    assert not {s.node.name: s.kernel for s in sess._steps}["gated"].reuse_output
    x = images(model, 2)
    first = sess.run(x[:1])
    kept = first.copy()
    sess.run(x[1:])
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("threshold", [None, 0.3])
def test_gate_and_conv_in_one_call_decide_as_three_calls_do(threshold):
    """GatedConvKernel.one_call_gate (gate, cut and conv in one compiled call) against the
    three-call route that calibration keeps: the same masks and bit-identical outputs."""
    model = models.squeezenet1_1(gated=True, image_size=48, num_classes=6, seed=3)
    x = images(model, 3, seed=5)
    one, three = pyprune.Session(model), pyprune.Session(model)
    for step in three._steps:
        if step.node.op == "GatedConv2d":
            step.kernel.one_call_gate = False
    for _ in range(2):  # the second call meets the zero rows the first one left
        (a, sa), (b, sb) = one.run_with_stats(x, threshold), three.run_with_stats(x, threshold)
        assert np.array_equal(a, b)
        for la, lb in zip(sa.layers, sb.layers):
            assert np.array_equal(la.active, lb.active) and np.array_equal(la.executed_macs, lb.executed_macs)
