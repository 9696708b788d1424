"""The model file: round trips, readability with plain h5py, and every kind of bad file
rejected with a ModelError that names the node and field."""

import h5py
import numpy as np
import pytest

import pyprune
from pyprune import ModelError, models
from pyprune.io.hdf5 import FORMAT_VERSION, seal


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.h5"
    pyprune.save(models.tiny_net(gated=True), path)
    return path


def test_round_trip_gives_identical_outputs(tmp_path):
    model = models.resnet_block(gated=True)
    path = tmp_path / "m.h5"
    pyprune.save(model, path)
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(pyprune.load(path).run(x), pyprune.Session(model).run(x))
    loaded = pyprune.load_model(path)
    assert [n.name for n in loaded.nodes] == [n.name for n in model.nodes]


def test_file_is_plain_h5py(model_file):
    with h5py.File(model_file) as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        node = f["nodes/000002"]
        assert node.attrs["op"] == "GatedConv2d"
        assert node["weight"].dtype == np.float32 and node["weight"].shape == (16, 8, 3, 3)
        assert tuple(node.attrs["kernel_size"]) == (3, 3)


def mutate(path, fn):
    """Edit the file with h5py and reseal it: these tests check validation, not integrity."""
    with h5py.File(path, "r+") as f:
        fn(f)
    seal(path)


def expect_error(path, *fragments):
    with pytest.raises(ModelError) as err:
        pyprune.load(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return err.value


def test_missing_dataset(model_file):
    mutate(model_file, lambda f: f["nodes/000002"].__delitem__("gate_bias"))
    expect_error(model_file, "node 'gconv2' (GatedConv2d)", "field 'gate_bias'", "missing weight")


def test_extra_dataset(model_file):
    mutate(model_file, lambda f: f["nodes/000000"].create_dataset("spare", data=np.zeros(3, np.float32)))
    expect_error(model_file, "node 'conv1'", "field 'spare'", "unexpected weight")


def test_weight_shape_contradicts_attributes(model_file):
    def fn(f):
        del f["nodes/000000/weight"]
        f["nodes/000000"].create_dataset("weight", data=np.zeros((8, 3, 5, 5), np.float32))
    mutate(model_file, fn)
    expect_error(model_file, "node 'conv1'", "field 'weight'", "(8, 3, 5, 5)", "(8, 3, 3, 3)")


def test_weight_shape_contradicts_incoming_channels(model_file):
    def fn(f):  # conv1 now makes 6 channels, but gconv2's weights still expect 8
        g = f["nodes/000000"]
        g.attrs["out_channels"] = np.int64(6)
        for key, shape in (("weight", (6, 3, 3, 3)), ("bias", (6,))):
            del g[key]
            g.create_dataset(key, data=np.zeros(shape, np.float32))
    mutate(model_file, fn)
    expect_error(model_file, "node 'gconv2'", "field 'weight'", "(16, 8, 3, 3)", "(16, 6, 3, 3)")


def test_unknown_op(model_file):
    mutate(model_file, lambda f: f["nodes/000001"].attrs.__setitem__("op", "Swish"))
    expect_error(model_file, "field 'op'", "unknown op 'Swish'")


def test_unknown_format_version(model_file):
    mutate(model_file, lambda f: f.attrs.__setitem__("format_version", np.int64(99)))
    expect_error(model_file, "field 'format_version'", "99")


def test_not_a_pyprune_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    expect_error(path, "field 'format'", "not a pyprune model")


def test_cycle(model_file):
    # relu1 (node 1) now reads gconv2's output, and gconv2 reads relu1's: a cycle.
    mutate(model_file, lambda f: f["nodes/000001"].attrs.__setitem__("inputs", np.array(["gconv2"], dtype=h5py.string_dtype())))
    expect_error(model_file, "cycle")


def test_undefined_tensor(model_file):
    mutate(model_file, lambda f: f["nodes/000001"].attrs.__setitem__("inputs", np.array(["ghost"], dtype=h5py.string_dtype())))
    expect_error(model_file, "node 'relu1' (Relu)", "field 'inputs'", "'ghost' is not defined")


def test_float64_weights(model_file):
    def fn(f):
        data = f["nodes/000000/bias"][()]
        del f["nodes/000000/bias"]
        f["nodes/000000"].create_dataset("bias", data=data.astype(np.float64))
    mutate(model_file, fn)
    expect_error(model_file, "node 'conv1'", "field 'bias'", "float32", "float64")


def test_nan_in_weights_is_an_error(model_file):
    def fn(f):
        f["nodes/000002/weight"][0, 0, 0, 0] = np.nan
    mutate(model_file, fn)
    expect_error(model_file, "node 'gconv2'", "field 'weight'", "NaN")


def test_absurd_input_size_rejected_before_allocation(model_file):
    mutate(model_file, lambda f: f["inputs"].attrs.__setitem__("input", np.array([3, 2**20, 2**20], np.int64)))
    expect_error(model_file, "input 'input'", "over the limit")


def test_absurd_weight_dataset_rejected_before_reading(model_file):
    def fn(f):  # 2**40 declared elements; HDF5 allocates nothing until written
        del f["nodes/000000/bias"]
        f["nodes/000000"].create_dataset("bias", shape=(2**40,), dtype=np.float32)
    mutate(model_file, fn)
    assert model_file.stat().st_size < 10**6
    expect_error(model_file, "node 'conv1'", "field 'bias'", "over the limit")


def test_absurd_attribute_size(model_file):
    mutate(model_file, lambda f: f["nodes/000000"].attrs.__setitem__("out_channels", np.int64(2**40)))
    expect_error(model_file, "node 'conv1'", "field 'out_channels'", "outside")


def test_attribute_of_wrong_type(model_file):
    mutate(model_file, lambda f: f["nodes/000000"].attrs.__setitem__("stride", "two"))
    expect_error(model_file, "node 'conv1'", "field 'stride'", "expected 2 integers")


def test_unknown_attribute(model_file):
    mutate(model_file, lambda f: f["nodes/000001"].attrs.__setitem__("inplace", True))
    expect_error(model_file, "node 'relu1'", "field 'inplace'", "unknown attribute")


def test_missing_node_metadata(model_file):
    mutate(model_file, lambda f: f["nodes/000001"].attrs.__delitem__("op"))
    expect_error(model_file, "field 'op'", "missing")


def test_truncated_file(model_file):
    data = model_file.read_bytes()
    for cut in (len(data) // 2, 2000, 100):
        model_file.write_bytes(data[:cut])
        expect_error(model_file, "truncated or corrupted")


def test_corrupted_bytes_fail_the_checksum_before_hdf5_reads_them(model_file):
    """Random byte flips made libhdf5 crash or hang when fuzzing files without checksums."""
    data = bytearray(model_file.read_bytes())
    rng = np.random.default_rng(0)
    for _ in range(20):
        broken = bytearray(data)
        for pos in rng.integers(512, len(data), 5):
            broken[pos] ^= 0xFF
        model_file.write_bytes(bytes(broken))
        expect_error(model_file, "field 'checksum'", "seal")


def test_files_without_the_checksum_block_still_load(model_file, tmp_path):
    """A schema-conforming file written by plain h5py (no user block) is read as it is."""
    plain = tmp_path / "plain.h5"
    with h5py.File(model_file) as src, h5py.File(plain, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in src:
            src.copy(src[name], dst, name)
    assert not plain.read_bytes().startswith(b"PYPRUNE")
    x = np.zeros((1, 3, 16, 16), np.float32)
    np.testing.assert_array_equal(pyprune.load(plain).run(x), pyprune.load(model_file).run(x))


def test_not_hdf5_at_all(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"this is not a model" * 10)
    expect_error(path, "cannot read")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nowhere.h5", "cannot read")


def test_save_refuses_an_invalid_model(tmp_path):
    model = models.tiny_net()
    model.node("conv1").weights["bias"] = np.zeros(5, np.float32)
    with pytest.raises(ModelError, match="field 'bias'"):
        pyprune.save(model, tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_a_file_that_hangs_libhdf5_gives_an_error_not_a_hang(monkeypatch):
    """Found by fuzzing an unsealed file: libhdf5 loops forever reading its root attributes.
    Unsealed files are read in a child process first, with a time limit."""
    import os
    from pyprune import config
    monkeypatch.setattr(config, "UNSEALED_PROBE_SECONDS", 10)
    path = os.path.join(os.path.dirname(__file__), "..", "data", "libhdf5_hangs_on_this.h5")
    with pytest.raises(ModelError, match="did not finish within 10 s"):
        pyprune.load(path)
