"""Whole network: SqueezeNet 1.1 (224 x 224), batch 1 and 8, dense and gated (75/50/25%
of fire-module kernels active), pyprune vs ONNX Runtime (the dense model, and the
exported gated model that computes every kernel and masks) and PyTorch eager (dense),
same weights, 1 and 2 threads."""

import pytest

import pyprune

from .conftest import batch_of, onnxruntime_session

NETS = ["dense", "gated75", "gated50", "gated25"]


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("net", NETS)
def test_pyprune(benchmark, squeezenets, images, threads, net, batch):
    x = batch_of(images, batch)
    sess = pyprune.Session(squeezenets[net])
    sess.run(x)  # load or compile the kernels before timing
    _, stats = sess.run_with_stats(x)
    benchmark.extra_info.update(executed_macs_fraction=float(stats.executed_fraction.mean()), threads=threads)
    benchmark.group = f"squeezenet1_1 batch {batch}, {threads} thread(s)"
    benchmark(sess.run, x)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("net", ["dense", "gated50", "gated25"])
def test_onnxruntime(benchmark, squeezenets, images, threads, net, batch):
    sess = onnxruntime_session(squeezenets[net], threads)
    feed = {"input": batch_of(images, batch)}
    sess.run(None, feed)
    benchmark.extra_info["threads"] = threads
    benchmark.group = f"squeezenet1_1 batch {batch}, {threads} thread(s)"
    benchmark(sess.run, None, feed)


@pytest.mark.parametrize("batch", [1, 8])
def test_pytorch_eager(benchmark, images, threads, batch):
    torch = pytest.importorskip("torch", reason="peer PyTorch not installed: pip install torch==2.13.0")
    from tests.convert.torch_models import squeezenet
    torch.set_num_threads(threads)
    net = squeezenet("1_1").eval()
    x = torch.from_numpy(batch_of(images, batch))
    benchmark.extra_info["threads"] = threads
    benchmark.group = f"squeezenet1_1 batch {batch}, {threads} thread(s)"
    with torch.no_grad():
        net(x)
        benchmark(net, x)
