"""The 3 x 3 convs on register tiles (kernels/cpu/tile_gemm.py) against the float64
reference on random shapes, live channels, active kernels and pixel ranges; their packing
and guarded planes; the conv kernel's choice of them; and the channels-in-lanes tile
against its formula."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from pyprune import config
from pyprune.kernels.cpu.conv_gemm import EMPTY, FULL, PANEL_MIN_ROWS, PARTIAL, TILED, TRANSPOSED, prepare_sample
from pyprune.kernels.cpu.llvm_vectors import compiles_avx512
from pyprune.kernels.cpu.tile_gemm import (BACK, BLOCK_BYTES, BLOCK_PANELS, COLS, GUARD, ROWS, claim_unit, guard_planes,
                                           guarded_size, pack_panels, pack_tiles, panel_blocks, panels_size,
                                           tile_count, tile_lanes, tiled_conv, work_units)
from pyprune.ops.conv import conv2d_reference

from ...helpers import ON_CPU, ON_CPU_PYTHON_GEMM, assert_matches, live_act, make_kernel

SAME_3X3 = dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)


@st.composite
def tile_cases(draw):
    h = draw(st.integers(1, 24))
    w = draw(st.integers(max(1, -(-COLS // h)), 24))  # at least a tile's 16 pixels
    c, m = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    hw = h * w
    c0 = draw(st.integers(0, hw - COLS))
    c1 = draw(st.integers(c0 + COLS, hw))
    return dict(h=h, w=w, c=c, m=m, c0=c0, c1=c1, relu=draw(st.booleans()), seed=draw(st.integers(0, 2**31)),
                live=draw(st.lists(st.booleans(), min_size=c, max_size=c)),
                active=draw(st.lists(st.booleans(), min_size=m, max_size=m)))


def _check_tiles(h, w, c, m, c0, c1, relu, seed, live, active, kk=9, packed_for_all=False, x_panels=False):
    """tiled_conv (a 3 x 3 conv for kk = 9, a 1 x 1 for kk = 1) on random data against the
    float64 reference over pixels [c0, c1), run as two threads' shares one after the other,
    writing nothing else; its weights packed for the live channels, or where packed_for_all
    for all c of them (read at the live ones); a 1 x 1 conv's input read in place, or where
    x_panels as pack_panels' copy."""
    rng = np.random.default_rng(seed)
    live_idx = np.flatnonzero(live).astype(np.int64)
    act_idx = np.flatnonzero(active).astype(np.int64)
    if len(live_idx) == 0 or len(act_idx) == 0:
        live_idx, act_idx = np.arange(c), np.arange(m)
    side = 3 if kk == 9 else 1
    x = rng.normal(size=(c, h, w)).astype(np.float32)
    weight = rng.normal(size=(m, c, side, side)).astype(np.float32)
    bias = rng.normal(size=m).astype(np.float32)
    dead = np.setdiff1d(np.arange(c), live_idx)
    x[dead] = rng.normal(size=(len(dead), h, w)) * 1e6  # never read: a dead channel counts 0
    packed_idx = np.arange(c) if packed_for_all else live_idx
    w_tiles = np.empty(tile_count(len(act_idx)) * ROWS * len(packed_idx) * kk, np.float32)
    pack_tiles(weight.reshape(m, -1), kk, act_idx, packed_idx, w_tiles)
    if kk == 9:
        source = np.full(guarded_size(len(live_idx), h, w), np.nan, np.float32)
        guard_planes(x.reshape(c, -1), live_idx, h, w, source)
    elif x_panels:  # a NaN past the copy's end would show in the output
        source = np.full(panels_size(len(live_idx), c0, c1) + COLS, np.nan, np.float32)
        pack_panels(x.reshape(c, -1), live_idx, c0, c1, source)
    else:  # read where it lies, dead planes and all
        source = x.reshape(-1)
    dst = np.full((m, h * w), np.nan, np.float32)
    # Two threads' shares, one after the other: the back's claims first, stopped after
    # `taken` units (as if the other thread had claimed the rest), then the front's.
    units = work_units(len(live_idx), w if kk == 9 else 0, len(act_idx), c0, c1)
    taken = seed % (units + 1)
    counter = np.array([units - taken], np.int64)
    args = (source, kk, live_idx, len(live_idx), h, w, w_tiles, len(packed_idx), act_idx, bias, relu, dst, c0, c1,
            counter)
    prefetch = seed % 2 == 0  # the next tile's weights: the same bits either way
    tiled_conv(*args, True, x_panels, prefetch)
    counter[0] = taken * BACK
    tiled_conv(*args, False, x_panels, prefetch)

    x_live = np.zeros_like(x)
    x_live[live_idx] = x[live_idx]
    pad = (1, 1, 1, 1) if kk == 9 else (0, 0, 0, 0)
    want = conv2d_reference(x_live[None], weight, bias, (1, 1), pad, (1, 1), 1)[0].reshape(m, -1)
    size = conv2d_reference(np.abs(x_live[None]), np.abs(weight), np.abs(bias), (1, 1), pad, (1, 1),
                            1)[0].reshape(m, -1)
    if relu:
        want = np.maximum(want, 0.0)
    got = dst[act_idx][:, c0:c1]
    assert_matches(got, want[act_idx][:, c0:c1], magnitude=size[act_idx][:, c0:c1])
    untouched = np.ones(dst.shape, bool)
    untouched[np.ix_(act_idx, np.arange(c0, c1))] = False
    assert np.isnan(dst[untouched]).all(), "wrote outside its kernels' rows and its pixels"


@settings(max_examples=120, deadline=None)
@given(case=tile_cases())
def test_tiles_match_the_reference_on_their_pixels_and_write_nothing_else(case):
    _check_tiles(**case)


@settings(max_examples=120, deadline=None)
@given(case=tile_cases())
def test_pointwise_tiles_read_live_planes_in_place_and_match_the_reference(case):
    _check_tiles(**case, kk=1)


@settings(max_examples=60, deadline=None)
@given(case=tile_cases(), kk=st.sampled_from([1, 9]))
def test_tiles_read_weights_packed_for_every_channel_at_the_live_ones(case, kk):
    """A conv whose kernels are all active runs on the weights packed at load, over every
    input channel, whatever channels are live (no packing per call)."""
    _check_tiles(**case, kk=kk, packed_for_all=True)


@settings(max_examples=80, deadline=None)
@given(case=tile_cases(), packed_for_all=st.booleans())
def test_pointwise_tiles_read_live_planes_packed_in_panels_and_match_the_reference(case, packed_for_all):
    """A 1 x 1 conv over pack_panels' copy of its live channels: the same sums as in place,
    with the weights packed for the live channels or for all of them."""
    _check_tiles(**case, kk=1, packed_for_all=packed_for_all, x_panels=True)


@pytest.mark.parametrize("c0, c1", [(0, 37), (5, 40), (0, 16)])
def test_panels_hold_each_panel_of_the_live_planes_one_after_another(c0, c1):
    """out[(p*nl + l)*16 + q] = x[live[l], p0 + q], the last panel ending at c1 (overlapping
    the one before where 16 does not divide c1 - c0), nothing written past the copy."""
    x = np.arange(7 * 40, dtype=np.float32).reshape(7, 40)
    live = np.array([1, 4, 5], np.int64)
    out = np.full(panels_size(3, c0, c1) + 5, -1.0, np.float32)
    pack_panels(x, live, c0, c1, out)
    panels = -(-(c1 - c0) // COLS)
    for p in range(panels):
        p0 = min(c0 + p * COLS, c1 - COLS)
        for li, ch in enumerate(live):
            np.testing.assert_array_equal(out[(p * 3 + li) * COLS:][:COLS], x[ch, p0:p0 + COLS])
    assert (out[panels * 3 * COLS:] == -1.0).all()


@pytest.mark.parametrize("c0, c1", [(0, 400), (37, 391)])
def test_tiles_over_many_channels_run_in_blocks_of_panels_and_match_the_reference(c0, c1):
    """300 live channels of 20 x 20: a block's input rows fit BLOCK_BYTES in 11 panels, so
    the 25 panels go in 3 blocks (the cases above fit one block of up to BLOCK_PANELS)."""
    assert panel_blocks(300, 20, 25) == 11
    rng = np.random.default_rng(c0)
    _check_tiles(20, 20, 300, 13, c0, c1, True, c0 + 5, list(rng.random(300) < 0.9), list(rng.random(13) < 0.7))
    assert panel_blocks(1000, 0, 25) == 4  # a 1 x 1 conv's block: no rows above and below
    _check_tiles(20, 20, 1000, 13, c0, c1, False, c0 + 6, list(rng.random(1000) < 0.8), list(rng.random(13) < 0.7),
                 kk=1)
    _check_tiles(20, 20, 1000, 13, c0, c1, True, c0 + 7, list(rng.random(1000) < 0.8), list(rng.random(13) < 0.7),
                 kk=1, x_panels=True)


def test_panel_blocks_keep_a_block_of_input_rows_within_the_budget():
    for nl, w, panels in [(16, 55, 190), (64, 13, 11), (64, 224, 3136), (512, 14, 13), (4096, 56, 196), (1, 3, 1)]:
        per_block = panel_blocks(nl, w, panels)
        assert 1 <= per_block <= min(BLOCK_PANELS, panels)
        if per_block > 1:
            assert 4 * nl * (per_block * COLS + 2 * w) <= BLOCK_BYTES


@njit(cache=False)
def _one_lane_tile(out, ldp, out0, x, x0, taps, ntaps, xstep, w_lanes, w0, bias, b0, relu):
    tile_lanes(out, ldp, out0, x, x0, taps, ntaps, xstep, w_lanes, w0, bias, b0, relu)


@settings(max_examples=100, deadline=None)
@given(k=st.integers(0, 40), xstep=st.integers(1, 4), ldp=st.integers(16, 40), out0=st.integers(0, 20),
       x0=st.integers(0, 20), w0=st.integers(0, 20), b0=st.integers(0, 20), relu=st.booleans(),
       seed=st.integers(0, 2**31))
def test_lane_tile_matches_its_formula_and_writes_nothing_else(k, xstep, ldp, out0, x0, w0, b0, relu, seed):
    """tile_lanes: out[out0 + i*ldp + c] = act(bias[b0 + c] + sum over l < k of
    w[w0 + 16l + c] * x[x0 + taps[l] + i*xstep]) for 6 pixels i and 16 channels c, at any
    offsets and strides; no other float of out changes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=200).astype(np.float32)
    taps = rng.integers(0, 200 - x0 - 5 * xstep, size=max(k, 1)).astype(np.int64)
    w = rng.normal(size=w0 + 16 * max(k, 1)).astype(np.float32)
    bias = rng.normal(size=b0 + 16).astype(np.float32)
    out = np.full(out0 + 5 * ldp + 16 + 8, np.nan, np.float32)
    _one_lane_tile(out, ldp, out0, x, x0, taps, k, xstep, w, w0, bias, b0, relu)
    pixels = np.array([[x[x0 + taps[l] + i * xstep] for l in range(k)] for i in range(ROWS)]).reshape(ROWS, k)
    lanes = w[w0:w0 + 16 * k].reshape(k, 16)
    want = pixels.astype(np.float64) @ lanes.astype(np.float64) + bias[b0:b0 + 16]
    size = np.abs(pixels).astype(np.float64) @ np.abs(lanes).astype(np.float64) + np.abs(bias[b0:b0 + 16])
    if relu:
        want = np.maximum(want, 0.0)
    at = out0 + np.arange(ROWS)[:, None] * ldp + np.arange(16)
    assert_matches(out[at], want, magnitude=size)
    untouched = np.ones(out.shape, bool)
    untouched[at] = False
    assert np.isnan(out[untouched]).all(), "wrote outside its 6 x 16 floats"


@settings(max_examples=60, deadline=None)
@given(panels=st.integers(0, 40), ends=st.lists(st.booleans(), min_size=45, max_size=45))
def test_claims_from_both_ends_cover_each_unit_once(panels, ends):
    counter = np.zeros(1, np.int64)
    fronts, backs = [], []
    for from_back in ends:
        p = claim_unit(counter, panels, from_back)
        if p < 0:
            break
        (backs if from_back else fronts).append(p)
    assert claim_unit(counter, panels, False) == -1 and claim_unit(counter, panels, True) == -1
    assert fronts == list(range(len(fronts)))  # from the front in order, from the back in reverse
    assert backs == list(range(panels - 1, panels - 1 - len(backs), -1))
    assert sorted(fronts + backs) == list(range(panels))


def test_guarded_planes_hold_each_live_plane_between_zero_rows():
    x = np.arange(1, 3 * 4 * 5 + 1, dtype=np.float32).reshape(3, 20)
    live_idx = np.array([2, 0])
    out = np.full(guarded_size(2, 4, 5), np.nan, np.float32)
    guard_planes(x, live_idx, 4, 5, out)
    assert not np.isnan(out).any()
    assert (out[:GUARD] == 0).all() and (out[-GUARD:] == 0).all()
    planes = out[GUARD:-GUARD].reshape(2, 6, 5)
    assert (planes[:, 0] == 0).all() and (planes[:, -1] == 0).all()
    np.testing.assert_array_equal(planes[:, 1:-1].reshape(2, 20), x[live_idx])


@pytest.mark.parametrize("co", [1, 5, 6, 7, 13])
def test_packed_tiles_hold_six_kernels_per_step_repeating_the_last(co):
    c, kk = 5, 2
    w2 = np.arange(co * c * kk, dtype=np.float32).reshape(co, c * kk)
    act_idx, live_idx = np.arange(0, co, 2), np.array([1, 3, 4])
    na, k = len(act_idx), len(live_idx) * kk
    out = np.full(tile_count(na) * ROWS * k, np.nan, np.float32)
    pack_tiles(w2, kk, act_idx, live_idx, out)
    tiles = out.reshape(tile_count(na), k, ROWS)
    gathered = w2.reshape(co, c, kk)[act_idx][:, live_idx].reshape(na, k)
    for t in range(tile_count(na)):
        for j in range(ROWS):
            np.testing.assert_array_equal(tiles[t, :, j], gathered[min(t * ROWS + j, na - 1)])


POINTWISE = dict(kernel_size=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1)


def _kernel(c, co, h, w, on=ON_CPU, seed=0, side=3):
    rng = np.random.default_rng(seed)
    weights = {"weight": rng.normal(size=(co, c, side, side)).astype(np.float32),
               "bias": rng.normal(size=co).astype(np.float32)}
    attrs = dict(out_channels=co, **(SAME_3X3 if side == 3 else POINTWISE))
    kernel, _ = on.kernel("Conv2d", attrs, weights, [(c, h, w)])
    return kernel, weights, rng


@pytest.mark.parametrize("on", [ON_CPU, ON_CPU_PYTHON_GEMM], ids=["one-call", "python-gemm"])
def test_a_dense_3x3_conv_runs_on_tiles_and_matches_the_reference(on):
    kernel, weights, rng = _kernel(5, 11, 7, 9, on)
    assert kernel.tiles_fit and kernel.tiles
    x = live_act(rng.normal(size=(3, 5, 7, 9)), None)
    y = on.convolve(kernel, x, None).copy()
    want = conv2d_reference(x.data, weights["weight"], weights["bias"], (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert_matches(y, want)
    alone = np.concatenate([on.convolve(kernel, live_act(x.data[i:i + 1], None), None) for i in range(3)])
    np.testing.assert_array_equal(y, alone)


def test_a_fitting_conv_takes_tiles_for_every_sample_with_work():
    """Tiles take a sample whatever its live channels and active kernels, unless it has
    none (then its output is zeros); with the switch off, the GEMM modes come back."""
    kernel, _, rng = _kernel(4, 8, 5, 5)
    x = rng.normal(size=(4, 5, 5)).astype(np.float32)
    args = (kernel.w2, kernel.w2.T.copy(), kernel.conv_plan, kernel.index_buf, kernel.cols_buf.reshape(-1),
            kernel.w_buf)
    every_in, every_out, some_in, some_out = np.ones(4, bool), np.ones(8, bool), np.arange(4) != 1, np.arange(8) != 3
    for live, active in ((every_in, every_out), (some_in, every_out), (every_in, some_out), (some_in, some_out)):
        assert prepare_sample(x, live, active, *args)[0] == TILED
    assert prepare_sample(x, every_in, np.zeros(8, bool), *args)[0] == EMPTY
    kernel.tiles = False
    modes = [prepare_sample(x, live, active, *args)[0]
             for live, active in ((every_in, every_out), (some_in, every_out), (every_in, some_out))]
    assert modes == [FULL, TRANSPOSED, PARTIAL]


@pytest.mark.parametrize("always", [False, True])
def test_a_pointwise_conv_takes_tiles_for_few_live_channels_or_a_dead_one_and_few_kernels(always):
    """A 1 x 1 conv runs a sample on tiles where at most POINTWISE_TILE_MAX_K of its
    channels are live, or where one is dead and at most POINTWISE_TILE_MAX_ROWS kernels
    are active, else on the GEMM modes; with pointwise_tiles_always, every sample on tiles.
    The kernel takes pointwise_tiles_always from the config where Numba compiles for
    AVX-512."""
    most, rows = config.POINTWISE_TILE_MAX_K, config.POINTWISE_TILE_MAX_ROWS
    c, co = 3 * most, rows + 1
    kernel, _, rng = _kernel(c, co, 5, 5, side=1)
    assert kernel.tiles_fit and kernel.pointwise_tiles
    assert kernel.pointwise_tiles_always == (config.POINTWISE_TILES_ALWAYS_ON_AVX512 and compiles_avx512())
    kernel.pointwise_tiles_always = always
    x = rng.normal(size=(c, 5, 5)).astype(np.float32)
    args = (kernel.w2, kernel.w2.T.copy(), kernel.conv_plan, kernel.index_buf, kernel.cols_buf.reshape(-1),
            kernel.w_buf)
    every_out, most_out = np.ones(co, bool), np.arange(co) != 3  # rows + 1 and rows active
    gemm = not always  # the first two rows of samples on the GEMM modes, else on tiles
    for live_count, modes in ((c, (FULL, PARTIAL) if gemm else (TILED, TILED)),
                              (most + 1, (TRANSPOSED, TILED) if gemm else (TILED, TILED)),
                              (most, (TILED, TILED)), (1, (TILED, TILED))):
        live = np.arange(c) < live_count
        assert (prepare_sample(x, live, every_out, *args)[0], prepare_sample(x, live, most_out, *args)[0]) == modes
    kernel.pointwise_tiles = False
    assert prepare_sample(x, np.arange(c) < 1, every_out, *args)[0] == TRANSPOSED


def _check_pointwise_batch(kernel, weights, x, active):
    """A 1 x 1 conv of 13 kernels on the batch x (N, C, 6, 7) into an output that held other
    values: active kernels match the reference, inactive ones are exactly zero, and each
    sample run alone gives the same bits."""
    n, live = x.data.shape[0], x.live
    got = kernel.convolve(x, active, np.full((n, 13, 6, 7), 7.0, np.float32)).copy()
    want = conv2d_reference(x.data, weights["weight"], weights["bias"], (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert_matches(got, want * active[:, :, None, None])
    assert not got[~active].any()
    alone = np.concatenate([kernel.convolve(live_act(x.data[i:i + 1], live[i:i + 1]), active[i:i + 1],
                                            np.full((1, 13, 6, 7), 7.0, np.float32)) for i in range(n)])
    np.testing.assert_array_equal(got, alone)


@pytest.mark.parametrize("on", [ON_CPU, ON_CPU_PYTHON_GEMM], ids=["one-call", "python-gemm"])
@pytest.mark.parametrize("c", [7, 70])
@pytest.mark.parametrize("always", [False, True], ids=["limits", "always-tiles"])
def test_pointwise_convs_on_tiles_or_sgemm_match_the_reference_alone_and_in_a_batch(on, c, always):
    """7 channels: every sample on tiles; 70: the dense sample on sgemm (on tiles with
    pointwise_tiles_always), the others on tiles (13 kernels); the bits of a sample do not
    depend on the batch around it."""
    kernel, weights, rng = _kernel(c, 13, 6, 7, on, side=1)
    kernel.pointwise_tiles_always = always
    n = 4
    live = rng.random((n, c)) < 0.7
    live[0] = True
    live[3] = np.arange(c) % 3 == 0  # 3 and 24 live channels
    active = rng.random((n, 13)) < 0.6
    active[:, 2] = True
    active[1] = True
    _check_pointwise_batch(kernel, weights, live_act(rng.normal(size=(n, c, 6, 7)), live), active)


def test_a_pointwise_conv_over_many_kernels_takes_tiles_over_its_channels_in_panels():
    """Where at least POINTWISE_PANEL_MIN_ROWS kernels are active, a 1 x 1 conv runs a
    sample on tiles over pack_panels' copy, whatever its live channels (the GEMM modes
    otherwise, here); with pointwise_panels off, the GEMM modes come back."""
    rows, most = config.POINTWISE_PANEL_MIN_ROWS, config.POINTWISE_TILE_MAX_K
    assert rows > config.POINTWISE_TILE_MAX_ROWS
    c, co = 3 * most, rows + 1
    kernel, _, rng = _kernel(c, co, 5, 5, side=1)
    assert kernel.pointwise_panels and kernel.conv_plan[PANEL_MIN_ROWS] == rows
    kernel.pointwise_tiles_always = False
    x = rng.normal(size=(c, 5, 5)).astype(np.float32)
    args = (kernel.w2, kernel.w2.T.copy(), kernel.conv_plan, kernel.index_buf, kernel.cols_buf.reshape(-1),
            kernel.w_buf)
    every_in, some_in = np.ones(c, bool), np.arange(c) % 3 != 0
    many, fewer = np.arange(co) != 3, np.arange(co) > 1  # rows and rows - 1 active
    for live, active, mode in ((every_in, many, TILED), (some_in, many, TILED), (every_in, fewer, PARTIAL),
                               (some_in, np.ones(co, bool), TILED)):
        got, _, k, cols = prepare_sample(x, live, active, *args)
        assert got == mode
        if mode == TILED:
            nl = live.sum()
            assert k == nl and cols.size == panels_size(nl, 0, 25)
            np.testing.assert_array_equal(cols.reshape(-1)[COLS:2 * COLS], x[np.flatnonzero(live)[1]].reshape(-1)[:16])
    kernel.pointwise_panels = False
    assert prepare_sample(x, some_in, many, *args)[0] == PARTIAL


@pytest.mark.parametrize("on", [ON_CPU, ON_CPU_PYTHON_GEMM], ids=["one-call", "python-gemm"])
def test_pointwise_convs_on_panels_match_the_reference_alone_and_in_a_batch(on, monkeypatch):
    """With POINTWISE_PANEL_MIN_ROWS at 8 of 13 kernels, some samples run over panels
    (every kernel active, or 8-12 of them), the others on the tiles in place or sgemm;
    inactive kernels stay zero and a sample's bits do not depend on its batch."""
    monkeypatch.setattr(config, "POINTWISE_PANEL_MIN_ROWS", 8)
    kernel, weights, rng = _kernel(50, 13, 6, 7, on, side=1)
    n = 5
    live = rng.random((n, 50)) < 0.7
    live[0] = True
    active = np.ones((n, 13), bool)
    active[1, [2, 5]] = False  # 11 active: panels, weights packed per call
    active[2, :7] = False  # 6: in place or sgemm
    active[4, ::2] = False  # 6
    _check_pointwise_batch(kernel, weights, live_act(rng.normal(size=(n, 50, 6, 7)), live), active)


@pytest.mark.parametrize("geometry", [dict(stride=(2, 2)), dict(padding=(0, 0, 0, 0)), dict(dilation=(2, 2)),
                                      dict(kernel_size=(1, 1)), dict(kernel_size=(1, 1), padding=(0, 0, 0, 0),
                                                                     stride=(2, 2))])
def test_other_geometries_and_small_planes_never_take_tiles(geometry):
    attrs = dict(SAME_3X3, out_channels=8, **geometry)
    weights = {"weight": np.ones((8, 2, *attrs["kernel_size"]), np.float32), "bias": np.zeros(8, np.float32)}
    kernel, _ = make_kernel("Conv2d", attrs, weights, [(2, 9, 9)])
    assert not kernel.tiles_fit and kernel.w_tiles.size == 0
    small, _ = make_kernel("Conv2d", dict(SAME_3X3, out_channels=8), {"weight": np.ones((8, 2, 3, 3), np.float32),
                                                                      "bias": np.zeros(8, np.float32)}, [(2, 3, 5)])
    assert not small.tiles_fit  # 15 pixels: less than a tile


def test_the_config_switch_turns_tiles_off(monkeypatch):
    monkeypatch.setattr(config, "TILE_CONVS", False)
    kernel, _, _ = _kernel(2, 8, 6, 6)
    assert not kernel.tiles_fit and not kernel.tiles


@pytest.mark.parametrize("on", [ON_CPU, ON_CPU_PYTHON_GEMM], ids=["one-call", "python-gemm"])
def test_tiles_with_dead_channels_and_inactive_kernels_leave_those_kernels_zero(on):
    """Some channels dead and some kernels inactive, per sample, into an output that held
    other values: active kernels match the reference, inactive ones are exactly zero."""
    kernel, weights, rng = _kernel(6, 14, 6, 8, on)
    n = 3
    live = rng.random((n, 6)) < 0.6
    live[:, 0] = True
    active = rng.random((n, 14)) < 0.5
    active[:, 2] = True
    x = live_act(rng.normal(size=(n, 6, 6, 8)), live)
    out = np.full((n, 14, 6, 8), 7.0, np.float32)
    got = kernel.convolve(x, active, out)
    want = conv2d_reference(x.data, weights["weight"], weights["bias"], (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert_matches(got, want * active[:, :, None, None])
    assert not got[~active].any()
