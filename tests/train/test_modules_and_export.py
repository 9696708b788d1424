"""pyprune.train modules against the engine: same gate decisions, same outputs; the
short training recipe; checkpoints and the converter, including mismatched ones."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra is not installed: pip install torch==2.13.0")

import pyprune  # noqa: E402
from pyprune import ModelError  # noqa: E402
from pyprune.ops.conv import gate_cut  # noqa: E402
from pyprune.train import GatedCNN  # noqa: E402
from pyprune.train.export import save_checkpoint, to_pyprune  # noqa: E402
from pyprune.train.recipe import Schedule, finetune_gated, train_dense  # noqa: E402

from ..helpers import assert_matches  # noqa: E402


def tiny_config(hidden=8, pool="avg", group_size=2):
    gate = {"group_size": group_size, "hidden": hidden, "pool": pool, "threshold": 0.5}
    return {"input": [1, 12, 12], "classes": 4, "layers": [
        {"out": 8, "kernel": 3, "padding": 1, "gate": None, "pool": 2},
        {"out": 8, "kernel": 3, "padding": 1, "gate": gate},
        {"out": 12, "kernel": 3, "padding": 0, "gate": {**gate, "group_size": 3}, "pool": 2}]}


def randomized(net, seed=0):
    """Random batch-norm statistics, gate standardisation and gate biases around 0, so
    that the gates make mixed decisions."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in net.blocks:
            block.bn.running_mean.copy_(torch.randn(block.bn.num_features, generator=g) * 0.1)
            block.bn.running_var.copy_(torch.rand(block.bn.num_features, generator=g) + 0.5)
            if block.gated:
                block.gate_in_mean.copy_(torch.rand(block.gate_in_mean.shape, generator=g))
                block.gate_in_std.copy_(torch.rand(block.gate_in_std.shape, generator=g) + 0.5)
                block.gate.bias.copy_(torch.randn(block.gate.bias.shape, generator=g))
    return net.eval()


def torch_masks(net):
    return [b.last_mask.numpy().astype(bool) for b in net.gated_blocks()]


@pytest.mark.parametrize("hidden, pool", [(8, "avg"), (0, "avg"), (4, "max")])
def test_engine_equals_torch_on_converted_modules(hidden, pool):
    torch.manual_seed(0)
    net = randomized(GatedCNN(tiny_config(hidden, pool)))
    x = np.random.default_rng(0).random((16, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    y, stats = pyprune.Session(to_pyprune(net)).run_with_stats(x)
    engine = [l.mask for l in stats.layers if l.gated]
    for block, t_mask, e_mask in zip(net.gated_blocks(), torch_masks(net), engine):
        assert (np.repeat(t_mask, block.group_size, axis=1) == e_mask).all()
    assert any(m.any() and not m.all() for m in engine), "the test should exercise mixed masks"
    assert_matches(y, expected, tol=1e-5)


def test_short_training_run_trains_and_exports(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 1, 12, 12)).astype(np.uint8)
    y = (x.reshape(64, -1).mean(1) > 127).astype(np.int64)  # a learnable toy label
    schedule = Schedule(dense_epochs=1, gated_epochs=2, frozen_epochs=1, ramp_epochs=1, batch_size=16)
    dense = train_dense(tiny_config(), x, y, seed=0, schedule=schedule)
    gated = finetune_gated(tiny_config(), dense, x, y, seed=0, schedule=schedule)
    assert all(not b.gated for b in dense.blocks) and len(gated.gated_blocks()) == 2
    assert all(b.gates_frozen for b in gated.gated_blocks())
    assert not torch.equal(dense.blocks[0].conv.weight, gated.blocks[0].conv.weight), "fine-tuning moved the weights"
    path = tmp_path / "g.pt"
    save_checkpoint(gated, path)
    model = pyprune.convert(path, tmp_path / "g.h5")
    xf = (x[:8] / 255.0).astype(np.float32)
    with torch.no_grad():
        expected = gated(torch.from_numpy(xf)).numpy()
    assert_matches(pyprune.load(tmp_path / "g.h5").run(xf), expected, tol=1e-5)
    assert [n.op for n in model.nodes].count("GatedConv2d") == 2


def test_convert_command(tmp_path, capsys):
    from pyprune.cli import main
    net = randomized(GatedCNN(tiny_config()))
    save_checkpoint(net, tmp_path / "m.pt")
    assert main(["convert", str(tmp_path / "m.pt"), str(tmp_path / "m.h5")]) == 0
    assert "2 gated" in capsys.readouterr().out
    assert (tmp_path / "m.h5").exists()


def edit_checkpoint(tmp_path, fn):
    net = GatedCNN(tiny_config())
    ckpt = {"format": "pyprune-gated-cnn", "version": 1, "config": net.config, "state_dict": net.state_dict()}
    fn(ckpt)
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ModelError) as err:
        pyprune.convert(tmp_path / "bad.pt", tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()
    return str(err.value)


def test_mismatched_checkpoints_are_refused(tmp_path):
    msg = edit_checkpoint(tmp_path, lambda c: c["state_dict"].pop("fc.bias"))
    assert "missing keys ['fc.bias']" in msg and "bad.pt" in msg
    msg = edit_checkpoint(tmp_path, lambda c: c["state_dict"].__setitem__("extra.weight", torch.zeros(2)))
    assert "unexpected keys ['extra.weight']" in msg
    msg = edit_checkpoint(tmp_path, lambda c: c["state_dict"].__setitem__("blocks.1.conv.weight", torch.zeros(8, 8, 5, 5)))
    assert "blocks.1.conv.weight: (8, 8, 5, 5) instead of (8, 8, 3, 3)" in msg
    msg = edit_checkpoint(tmp_path, lambda c: c["config"]["layers"][1]["gate"].__setitem__("group_size", 3))
    assert "field 'config'" in msg and "divisible" in msg
    msg = edit_checkpoint(tmp_path, lambda c: c.__setitem__("format", "other"))
    assert "not a pyprune.train checkpoint" in msg


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read it as a PyTorch checkpoint"):
        pyprune.convert(tmp_path / "junk.pt", tmp_path / "junk.h5")
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ModelError, match="not a pyprune.train checkpoint"):
        pyprune.convert(tmp_path / "plain.pt", tmp_path / "plain.h5")
    with pytest.raises(ModelError, match="unknown source format"):
        pyprune.convert(tmp_path / "model.caffemodel", tmp_path / "x.h5")


def test_eval_gate_is_the_logit_comparison():
    net = randomized(GatedCNN(tiny_config()))
    x = torch.rand(4, 1, 12, 12)
    with torch.no_grad():
        net(x)
    block = net.gated_blocks()[0]
    probs = block.last_probs.numpy()
    assert ((probs > 0.5) == block.last_mask.numpy().astype(bool)).all()
    assert gate_cut(block.threshold) == 0.0
