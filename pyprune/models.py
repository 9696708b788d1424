"""Model builders with random weights, for tests, benchmarks and the demo.

`squeezenet1_1` follows torchvision's SqueezeNet 1.1 layer for layer; its gated form gates
every fire-module convolution (squeeze, expand 1x1, expand 3x3) and leaves conv1 and the
classifier dense. `calibrate_gates` sets gate biases so that a chosen fraction of kernels
is active on average over given images.
"""

import numpy as np

from .graph import Model, Node
from .ops import OPS
from .ops.base import NodeContext
from .ops.conv import gate_cut


class GraphBuilder:
    """Appends nodes with random weights; each method returns its output tensor's name."""

    def __init__(self, name, input_shape, seed=0, input_name="input"):
        self.name, self.rng = name, np.random.default_rng(seed)
        self.inputs = {input_name: tuple(input_shape)}
        self.shapes = dict(self.inputs)
        self.nodes = []

    def add(self, op, inputs, attrs=None, weights=None, name=None):
        name = name or f"{op.lower()}{len(self.nodes)}"
        attrs = dict(attrs or {})
        ctx = NodeContext(name, op)
        parsed = OPS[op].parse_attrs(attrs, ctx)
        in_shapes = [self.shapes[t] for t in inputs]
        self.shapes[name] = tuple(OPS[op].out_shape(parsed, in_shapes, ctx))
        if weights is None:
            weights = self._random_weights(op, parsed, in_shapes, ctx)
        self.nodes.append(Node(name, op, list(inputs), [name], attrs, weights))
        return name

    def _random_weights(self, op, a, in_shapes, ctx):
        out = {}
        for key, shape in OPS[op].weight_shapes(a, in_shapes, ctx).items():
            if key in ("weight", "gate_weight", "gate_hidden_weight"):
                fan_in = int(np.prod(shape[1:]))
                w = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)  # He init keeps scale
            elif key == "gate_bias":
                w = self.rng.normal(2.0, 0.5, shape)  # gates start open
            elif key == "var":
                w = self.rng.uniform(0.5, 1.5, shape)
            elif key == "scale":
                w = self.rng.uniform(0.8, 1.2, shape)
            else:
                w = self.rng.uniform(-0.1, 0.1, shape)
            out[key] = w.astype(np.float32)
        return out

    def conv(self, x, out_channels, kernel, stride=1, padding=0, groups=1, dilation=1,
             gate=None, name=None):
        """A conv; gate = dict of GatedConv2d gate attributes (may be empty) makes it gated."""
        p = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        attrs = {"out_channels": out_channels, "kernel_size": (kernel, kernel), "stride": (stride, stride),
                 "padding": p, "dilation": (dilation, dilation), "groups": groups}
        if gate is None:
            return self.add("Conv2d", [x], attrs, name=name)
        return self.add("GatedConv2d", [x], {**attrs, **gate}, name=name)

    def op(self, op, *inputs, name=None, **attrs):
        return self.add(op, list(inputs), attrs, name=name)

    def build(self, outputs):
        return Model(dict(self.inputs), list(outputs), self.nodes, self.name)


def squeezenet1_1(gated=False, num_classes=1000, image_size=224, seed=0, gate=None):
    """SqueezeNet 1.1 (Iandola et al.; torchvision's layout) with random weights."""
    b = GraphBuilder("squeezenet1_1" + ("_gated" if gated else ""), (3, image_size, image_size), seed)
    g = dict(gate or {}) if gated else None
    x = b.op("Relu", b.conv("input", 64, 3, stride=2, name="conv1"), name="relu1")
    pool = {"kernel_size": (3, 3), "stride": (2, 2), "ceil_mode": True}
    fires = [(16, 64), (16, 64), None, (32, 128), (32, 128), None, (48, 192), (48, 192), (64, 256), (64, 256)]
    x = b.op("MaxPool2d", x, name="pool1", **pool)
    index = 2
    for spec in fires:
        if spec is None:
            x = b.op("MaxPool2d", x, name=f"pool{index}", **pool)
            continue
        squeeze, expand = spec
        f = f"fire{index}"
        s = b.op("Relu", b.conv(x, squeeze, 1, gate=g, name=f"{f}/squeeze"), name=f"{f}/squeeze_relu")
        e1 = b.op("Relu", b.conv(s, expand, 1, gate=g, name=f"{f}/expand1x1"), name=f"{f}/expand1x1_relu")
        e3 = b.op("Relu", b.conv(s, expand, 3, padding=1, gate=g, name=f"{f}/expand3x3"),
                  name=f"{f}/expand3x3_relu")
        x = b.op("Concat", e1, e3, name=f"{f}/concat")
        index += 1
    x = b.op("Dropout", x, name="dropout", ratio=0.5)
    x = b.op("Relu", b.conv(x, num_classes, 1, name="conv10"), name="relu10")
    x = b.op("Flatten", b.op("GlobalAvgPool", x, name="avgpool"), name="logits")
    return b.build([x])


def tiny_net(gated=True, seed=0, num_classes=10, image_size=16):
    """A small net touching most ops, for fast tests."""
    b = GraphBuilder("tiny" + ("_gated" if gated else ""), (3, image_size, image_size), seed)
    gate = (lambda **kw: kw) if gated else (lambda **kw: None)
    x = b.op("Relu", b.conv("input", 8, 3, padding=1, name="conv1"))
    x = b.op("Relu", b.conv(x, 16, 3, padding=1, gate=gate(group_size=2, gate_hidden=4), name="gconv2"))
    x = b.op("MaxPool2d", x, kernel_size=(2, 2), stride=(2, 2))
    left = b.op("Relu", b.conv(x, 8, 3, padding=1, gate=gate(gate_pool="max"), name="gconv3a"))
    right = b.op("Relu", b.conv(x, 8, 1, gate=gate(), name="gconv3b"))
    x = b.op("Concat", left, right)
    x = b.op("Relu", b.conv(x, 16, 3, padding=1, groups=4, gate=gate(group_size=4), name="gconv4"))
    x = b.op("AvgPool2d", x, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), ceil_mode=True)
    x = b.op("Flatten", b.op("GlobalAvgPool", x))
    return b.build([b.op("Linear", x, out_features=num_classes, name="fc")])


def resnet_block(gated=False, seed=0, channels=16, image_size=32, num_classes=10):
    """A ResNet basic block with a strided projection shortcut and batch norms."""
    b = GraphBuilder("resnet_block" + ("_gated" if gated else ""), (3, image_size, image_size), seed)
    g = {} if gated else None
    stem = b.op("Relu", b.op("BatchNorm2d", b.conv("input", channels, 3, padding=1, name="stem")))
    y = b.op("Relu", b.op("BatchNorm2d", b.conv(stem, 2 * channels, 3, stride=2, padding=1, gate=g, name="conv_a")))
    y = b.op("BatchNorm2d", b.conv(y, 2 * channels, 3, padding=1, gate=g, name="conv_b"))
    shortcut = b.op("BatchNorm2d", b.conv(stem, 2 * channels, 1, stride=2, name="proj"))
    x = b.op("Relu", b.op("Add", y, shortcut))
    x = b.op("Flatten", b.op("GlobalAvgPool", x))
    return b.build([b.op("Softmax", b.op("Linear", x, out_features=num_classes, name="fc"))])


def calibrate_gates(model, images, active_fraction):
    """Shift each gate's biases so that `active_fraction` of its kernel groups are active,
    on average over `images` (float32, N x input shape). Gates are calibrated in order in
    one pass, each seeing the inputs its calibrated predecessors produce. Changes `model`.
    """
    from .errors import InputError
    from .runtime import Session
    if not 0.0 < active_fraction <= 1.0:
        raise InputError(f"active_fraction must be in (0, 1], got {active_fraction}")
    sess = Session(model)
    cut = {n.name: gate_cut(sess.info.attrs[n.name]["threshold"]) for n in model.nodes if n.op == "GatedConv2d"}

    def hook(name, z, bias):
        delta = cut[name] - _cut_between(z, active_fraction) if active_fraction < 1.0 else cut[name] - z.min() + 1.0
        node = model.node(name)
        node.weights["gate_bias"] = (node.weights["gate_bias"].astype(np.float64) + delta).astype(np.float32)
        return z + delta

    sess._run(images, None, stats=False, gate_hook=hook)
    return model


def _cut_between(z, active_fraction):
    """A point that leaves round(active_fraction * z.size) of the logits z above it, midway
    between the last logit it leaves below and the first above: a logit on the cut itself
    (as np.quantile gives wherever its index is whole) would be decided by the last bits of
    its sums, and could go either way between engines and BLAS libraries."""
    z = np.sort(z, axis=None)
    keep = min(max(int(round(active_fraction * z.size)), 0), z.size)
    if keep == 0:
        return z[-1] + 1.0
    if keep == z.size:
        return z[0] - 1.0
    return 0.5 * (z[z.size - keep - 1] + z[z.size - keep])


def synthetic_images(n, seed=0, size=224):
    """Synthetic RGB images for benchmarks and calibration: smooth colour gradients, blobs
    and noise, each with its own brightness and contrast, so that gates see different inputs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = rng.normal(0, 1, (3, 1, 1)) * (xx * rng.normal() + yy * rng.normal())
        for _ in range(rng.integers(1, 6)):
            cy, cx, r = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
            img = img + rng.normal(0, 2, (3, 1, 1)) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2)
        img = img + rng.uniform(0.05, 1.0) * rng.normal(size=(3, size, size))
        out[i] = img * rng.uniform(0.3, 2.0)
    return out
