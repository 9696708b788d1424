"""Keeps bench/ab_flag.py working: two rounds of each switch (the timings mean nothing)."""

import pytest

from . import ab_flag


@pytest.mark.parametrize("switch", ab_flag.SWITCHES)
def test_ab_flag_prints_a_row_per_net(switch, capsys):
    ab_flag.main([switch, "--rounds", "2"])
    out = capsys.readouterr().out
    for net in ("mnist gated", "squeezenet dense", "squeezenet gated 50%", "squeezenet gated 25%"):
        assert f"| {net} |" in out


def test_switches_exist_on_conv_kernels():
    """A renamed switch would make the A/B compare a session with itself."""
    import numpy as np
    from pyprune import models
    import pyprune
    sess = pyprune.Session(models.squeezenet1_1(gated=True, image_size=32, num_classes=4))
    kernels = [s.kernel for s in sess._steps if s.node.op == "GatedConv2d"]
    flags = [sw for sw in ab_flag.SWITCHES if sw not in ("shared_workspace", "banded", "paired_call",
                                                         *ab_flag.SESSION_SWITCHES)]
    assert all(hasattr(k, sw) for k in kernels for sw in flags)
    assert all(hasattr(sess, sw) for sw in ab_flag.SESSION_SWITCHES)  # a session's settings, not a kernel's
    sess.run(np.zeros((1, 3, 32, 32), np.float32))  # `paired_call` lives on the fire modules' kernels
    assert all(hasattr(step[1], "paired_call") for step in sess._lanes[0].lean[0] if "+" in step[1].name)
    assert any("+" in step[1].name for step in sess._lanes[0].lean[0])
    # `banded` lives on the kernel that runs conv1 with pool1 (full-size SqueezeNet only).
    stem = pyprune.Session(models.squeezenet1_1(num_classes=4))
    assert hasattr(next(s.kernel for s in stem._steps if s.node.name == "conv1"), "banded")


def test_shared_workspace_off_gives_each_conv_its_own_buffers():
    import numpy as np
    from pyprune import models
    model = models.squeezenet1_1(gated=True, image_size=32, num_classes=4)
    for on in (False, True):
        sess = ab_flag.session(model, "shared_workspace", on, np.zeros((1, 3, 32, 32), np.float32))
        squeeze, first, second = [s.kernel for s in sess._steps if s.node.op == "GatedConv2d"][:3]
        assert np.shares_memory(squeeze.cols_buf, second.cols_buf) == on
        # a fire module's first expand has buffers of its own either way (fire.own_workspace)
        assert not np.shares_memory(first.cols_buf, second.cols_buf)
