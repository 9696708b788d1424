"""GPU check: on a machine with an NVIDIA GPU, verify every CUDA kernel against the CPU
path, then time dense and gated convolutions and the whole SqueezeNet 1.1, with
PyTorch/cuDNN as the peer when torch with CUDA is present. Prints one report.

    python bench/gpu_check.py            # from the repo root; installs nothing
    python bench/gpu_check.py --smoke    # tiny shapes, one round: runs in the CUDA simulator

Needs numpy, numba, numba-cuda and h5py; torch is optional. Built to finish within four
minutes on an H100, compilation included (about a minute of it is Numba compiling).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_time  # noqa: E402
from pyprune import Session, models  # noqa: E402
from pyprune.devices import CPU, get_device  # noqa: E402
from pyprune.kernels.cuda.listing import launch_compact  # noqa: E402  (needs numba-cuda, as this script does)
from tests.helpers import OnDevice, live_act, same_mask  # noqa: E402  (numpy and pyprune only)

TOLERANCE = 1e-4


def kernel_cases(rng, size):
    """(op, attrs, weights, input shapes, live pattern) covering every CUDA kernel."""
    c, h = 16 if size else 4, 20 if size else 5
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    conv = lambda co, ci, k: {"weight": f32(co, ci, k, k), "bias": f32(co)}  # noqa: E731
    gate = {"gate_hidden_weight": f32(8, c), "gate_hidden_bias": f32(8), "gate_weight": f32(c // 2, 8),
            "gate_bias": f32(c // 2)}
    img = [(c, h, h)]
    return [
        ("Conv2d", dict(out_channels=2 * c, kernel_size=(3, 3), padding=(1, 1, 1, 1)), conv(2 * c, c, 3), img, "random"),
        ("Conv2d", dict(out_channels=c, kernel_size=(3, 3), stride=(2, 2), groups=c), conv(c, 1, 3), img, "random"),
        ("GatedConv2d", dict(out_channels=c, kernel_size=(1, 1), group_size=2, gate_hidden=8), {**conv(c, c, 1), **gate},
         img, "random"),
        ("GatedConv2d", dict(out_channels=c, kernel_size=(3, 3), padding=(1, 1, 1, 1), group_size=2, gate_hidden=8,
                             gate_pool="max"), {**conv(c, c, 3), **gate}, img, "all"),
        ("BatchNorm2d", {}, {"scale": f32(c), "bias": f32(c), "mean": f32(c), "var": np.abs(f32(c))}, img, "random"),
        ("Relu", {}, {}, img, "random"), ("Relu6", {}, {}, img, "random"), ("Clip", {"min": -0.5, "max": 0.5}, {}, img, "all"),
        ("LeakyRelu", {"alpha": 0.1}, {}, img, "random"), ("Sigmoid", {}, {}, img, "random"),
        ("Softmax", {}, {}, img, "all"), ("Dropout", {}, {}, img, "random"),
        ("MaxPool2d", dict(kernel_size=(3, 3), stride=(2, 2), ceil_mode=True), {}, img, "random"),
        ("AvgPool2d", dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), count_include_pad=True), {}, img,
         "random"),
        ("GlobalAvgPool", {}, {}, img, "random"), ("GlobalMaxPool", {}, {}, img, "random"),
        ("Concat", {}, {}, img * 2, "random"), ("Add", {}, {}, img * 2, "random"), ("Flatten", {}, {}, img, "random"),
        ("Linear", {"out_features": 10}, {"weight": f32(10, c * h * h), "bias": f32(10)}, [(c * h * h,)], "all"),
        ("Scale", {}, {"scale": f32(c)}, img, "random"), ("AddBias", {}, {"bias": f32(c)}, img, "random"),
        ("LRN", dict(size=5, alpha=1e-2, beta=0.75, bias=1.0), {}, img, "random"),
    ]


def check_kernels(gpu, batch, size):
    """Each case on both devices; returns rows (op, shape, relative error, masks equal)."""
    rng = np.random.default_rng(0)
    on_cpu, on_gpu = OnDevice(CPU), OnDevice(gpu)
    rows = []
    for op, attrs, weights, in_shapes, pattern in kernel_cases(rng, size):
        xs = [live_act(rng.normal(size=(batch, *shape)),
                       None if pattern == "all" else rng.random((batch, shape[0])) < 0.6) for shape in in_shapes]
        y0 = on_cpu.run(on_cpu.kernel(op, attrs, weights, in_shapes)[0], xs)
        y1 = on_gpu.run(on_gpu.kernel(op, attrs, weights, in_shapes)[0], xs)
        err = np.abs(y1.data - y0.data).max() / max(np.abs(y0.data).max(), 1e-30)
        rows.append((op, f"{batch}x{'x'.join(map(str, in_shapes[0]))}", err, same_mask(y0.live, y1.live)))
    return rows


def conv_layers(smoke):
    """SqueezeNet 1.1 convolutions (C_in, C_out, kernel, side) at 224 x 224."""
    if smoke:
        return [("small 3x3", 4, 16, 3, 6)]
    return [("fire2/expand3x3", 16, 64, 3, 55), ("fire5/expand3x3", 32, 128, 3, 27),
            ("fire9/expand3x3", 64, 256, 3, 13), ("fire9/expand1x1", 64, 256, 1, 13)]


def time_convs(gpu, torch, batch, rounds, smoke):
    """Rows (layer, active %, ms pyprune, ratio to its dense, ms cuDNN dense, ms of the
    gated conv's `compact` launch alone: its share of the gated time)."""
    rng = np.random.default_rng(1)
    rows = []
    for name, cin, cout, k, side in conv_layers(smoke):
        pad = (k // 2,) * 4
        attrs = dict(out_channels=cout, kernel_size=(k, k), padding=pad)
        weights = {"weight": rng.normal(size=(cout, cin, k, k)).astype(np.float32),
                   "bias": rng.normal(size=cout).astype(np.float32)}
        kernel, _ = OnDevice(gpu).kernel("Conv2d", attrs, weights, [(cin, side, side)], name)
        x = gpu.upload(live_act(rng.normal(size=(batch, cin, side, side)), None))
        dense = median_time(lambda: kernel.convolve(x, None), gpu.synchronize, rounds)
        peer = time_cudnn_conv(torch, weights, pad[0], x, rounds)
        rows.append((name, 100, dense * 1e3, 1.0, peer, None))
        for p in (0.5, 0.25):
            active = np.zeros((batch, cout), bool)
            for s in range(batch):  # a different random set of round(p * C) kernels per sample
                active[s, rng.choice(cout, round(p * cout), replace=False)] = True
            mask = gpu.to_device(active)
            t = median_time(lambda: kernel.convolve(x, mask), gpu.synchronize, rounds)
            order, n_act = kernel.buffer("order", (batch, cout), np.int32), kernel.buffer("n_act", (batch,), np.int32)
            listing = median_time(lambda: launch_compact(kernel, mask, order, n_act), gpu.synchronize,
                                  rounds)
            rows.append((name, int(p * 100), t * 1e3, t / dense, None, listing * 1e3))
    return rows


def time_cudnn_conv(torch, weights, pad, x, rounds):
    if torch is None:
        return None
    conv = torch.nn.functional.conv2d
    w, b = (torch.from_numpy(weights[k]).cuda() for k in ("weight", "bias"))
    xt = torch.from_numpy(x.data.copy_to_host()).cuda()
    with torch.no_grad():
        return median_time(lambda: conv(xt, w, b, padding=pad), torch.cuda.synchronize, rounds) * 1e3


def time_squeezenet(gpu, torch, batches, rounds, smoke):
    """Rows (batch, net, ms pyprune, images/s, max rel. diff to CPU, ms cuDNN dense)."""
    size = 8 if smoke else 224
    images = models.synthetic_images(max(batches), seed=0, size=size)
    rows = []
    for net in ("dense", "gated50", "gated25"):
        gated = net != "dense"  # the smoke run takes a tiny net: the simulator is slow
        model = models.tiny_net(gated, image_size=size) if smoke else models.squeezenet1_1(gated, seed=0)
        if gated:
            models.calibrate_gates(model, images[:8], int(net[5:]) / 100)
        cpu, dev = Session(model), Session(model, device=gpu)
        for batch in batches:
            x = np.ascontiguousarray(images[:batch])
            want = cpu.run(x)
            diff = np.abs(dev.run(x) - want).max() / np.abs(want).max()
            t = median_time(lambda: dev.run(x), gpu.synchronize, rounds)
            peer = time_cudnn_squeezenet(torch, x, rounds) if net == "dense" and not smoke else None
            rows.append((batch, net, t * 1e3, batch / t, diff, peer))
    return rows


def time_cudnn_squeezenet(torch, x, rounds):
    if torch is None:
        return None
    from tests.convert.torch_models import squeezenet
    net = squeezenet("1_1").cuda().eval()
    torch.backends.cudnn.benchmark = True
    with torch.no_grad():
        # Copies in and out are timed, as pyprune's run() takes and returns host arrays.
        return median_time(lambda: net(torch.from_numpy(x).cuda()).cpu(), torch.cuda.synchronize, rounds) * 1e3


def cuda_torch():
    try:
        import torch
    except ImportError:
        return None, "torch not installed"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} has no CUDA"
    return torch, f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and one round (simulator)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    gpu = get_device("cuda")
    torch, torch_info = (None, "skipped in --smoke") if args.smoke else cuda_torch()
    name = getattr(gpu.cuda.get_current_device(), "name", "Numba's CUDA simulator")
    name = name.decode() if isinstance(name, bytes) else name
    print(f"# pyprune GPU check: {name}, {torch_info}")
    rounds = 1 if args.smoke else 20

    rows = check_kernels(gpu, batch=2 if args.smoke else 4, size=not args.smoke)
    print(f"\n## Every CUDA kernel against the CPU kernel (limit: {TOLERANCE:g} relative)\n")
    print("| op | input | max rel. diff | masks equal | ok |\n|---|---|---:|---|---|")
    for op, shape, err, masks in rows:
        print(f"| {op} | {shape} | {err:.2e} | {masks} | {'yes' if err <= TOLERANCE and masks else 'NO'} |")
    failed = [r[0] for r in rows if not (r[2] <= TOLERANCE and r[3])]

    batch = 2 if args.smoke else 32
    print(f"\n## Convolutions, batch {batch}: active kernels per sample drawn at random (limit at 25%: 0.40)\n")
    print("| layer | active % | pyprune ms | / own dense | cuDNN dense ms | of it, compact ms |\n"
          "|---|---:|---:|---:|---:|---:|")
    for name, p, ms, ratio, peer, listing in time_convs(gpu, torch, batch, rounds, args.smoke):
        print(f"| {name} | {p} | {ms:.3f} | {ratio:.2f} | {fmt(peer, '.3f')} | {fmt(listing, '.3f')} |")

    batches = (1, 2) if args.smoke else (1, 32)
    print(f"\n## {'A tiny net' if args.smoke else 'SqueezeNet 1.1'} (host arrays in and out; gated: "
          "gates calibrated to keep 50% / 25% of fire-module kernels)\n")
    print("| batch | net | pyprune ms | images/s | rel. diff to CPU | cuDNN dense ms | cuDNN images/s |\n"
          "|---:|---|---:|---:|---:|---:|---:|")
    for b, net, ms, ips, diff, peer in time_squeezenet(gpu, torch, batches, rounds, args.smoke):
        print(f"| {b} | {net} | {ms:.2f} | {ips:.0f} | {diff:.1e} | {fmt(peer, '.2f')} | "
              f"{fmt(None if peer is None else b / peer * 1e3, '.0f')} |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s; kernel checks failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
