"""Session: prepares a validated model for a device once, then runs batches through it."""

import math
import os
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import config, threads
from .devices import CPU, get_device
from .bound_program import bind_program
from .errors import InputError
from .graph import analyze
from .kernels.cpu import Act
from .kernels.macs import model_dense_macs
from .lean_steps import lean_program, run_lean
from .ops.conv import gate_cut
from .pair_thread import PairThread
from .passes import fold_batchnorm
from .plan import Copy, build_plan
from .stats import LayerStats, RunStats


class RunContext:
    """Per-call settings that kernels consult: threshold overrides and the calibration hook."""

    def __init__(self, thresholds=None, default=None, gate_hook=None, pair=None):
        self.thresholds, self.default, self.gate_hook = thresholds or {}, default, gate_hook
        self.pair = pair  # a PairThread for CPU convs to run a batch of one's big GEMMs on, or None

    def threshold_for(self, node_name, file_value):
        t = self.thresholds.get(node_name, self.default)
        return file_value if t is None else t

    def cut_for(self, node_name, file_cut):
        """The logit cut a gated conv compares with in this call: file_cut (its file's
        threshold, as gate_cut gives it) unless this call sets a threshold for it."""
        t = self.threshold_for(node_name, None)
        return file_cut if t is None else gate_cut(t)


class Session:
    """Runs a model. `pyprune.load(path, device=...)` returns one; `Session(model)` works too.

    device: 'cpu' (default), 'cuda' (an NVIDIA GPU; needs the `cuda` extra, and raises
    DeviceError when no GPU is usable), 'auto' (the GPU if usable, else the CPU with a
    warning), or a pyprune Device. Nodes the device declines run on the CPU, with explicit
    copies between; `placement` and `declined` say which went where and why.

    The model is validated in full, batch norms that follow convs are folded into them,
    and every kernel's weights are packed once, here. A session reuses work buffers
    between calls: run one call at a time per session (use one session per thread).

    On the CPU, with n = pyprune.get_num_threads() >= 2, run() cuts a batch into up to n
    chunks of samples, each of at least config.SPLIT_MIN_MACS dense MACs (1 sample of
    SqueezeNet 1.1, 7 of the shipped MNIST model), and runs them at once, one per thread,
    each through its own copy of the kernels (made on first need: the packed weights and
    work buffers again). Where one sample holds that many (SqueezeNet; not the MNIST
    model, whose convs are too small to share), a batch of one runs its conv GEMMs in two
    parts, on the calling thread and a helper thread at once (pair_thread.py). BLAS runs
    single-threaded everywhere (pyprune/threads.py says why), and the GEMMs are cut the
    same way in every call at n >= 2 (at n = 1, or for a smaller model, not at all), so
    the results are bitwise the unsplit run's, and each sample's are what it gives
    alone. Set `split_batches` to False to run every batch whole on the calling thread
    alone.

    A fire module (a conv whose output only two convs read, both writing into one concat)
    runs as one compiled call (kernels/cpu/fire.py), with a helper thread too; set
    `fuse_fire_modules` to False, before the first run, to run it as four steps.

    Repeated calls of one batch size (up to config.BIND_MAX_BATCH) with the file's
    thresholds run as a bound program (bound_program.py): bound on the first such call,
    which reads the kernels' switches; `unbind()` binds anew, and `bind_calls = False`
    runs every call as the lean program.
    """

    split_batches = True
    fuse_fire_modules = True
    bind_calls = True

    def __init__(self, model, device="cpu"):
        self.model = model
        self.device = get_device(device)
        model = fold_batchnorm(model, analyze(model))
        info = analyze(model, check_values=False)
        self.info = info
        self.input_shapes = {k: info.shapes[k] for k in model.inputs}
        self.output_names = list(model.outputs)
        self.gated_nodes = [n.name for n in info.order if n.op == "GatedConv2d"]
        plan = build_plan(model, info, self.device)
        self.placement, self.declined = plan.placement, plan.declined
        self._outputs = [plan.resolve(t) for t in self.output_names]
        # Only a session wholly on the CPU splits batches (its kernels release the GIL).
        self._splittable = self.device is CPU and not any(isinstance(s, Copy) for s in plan.steps)
        self._lanes = [plan]  # plans of the same model: lane i runs chunk i of a split batch
        self._folded = model
        self._pool, self._pool_size, self._pool_pid = None, 0, None
        self._pair = None  # a PairThread, for a batch of one's big GEMMs on two threads
        self._cuts = None  # whether the CPU convs cut their big GEMMs now (_cut_gemms)
        self._min_per_lane = max(1, math.ceil(config.SPLIT_MIN_MACS / max(1, model_dense_macs(info))))
        # (batch size, with a pair thread) -> (the lean program, the PairThread, its
        # BoundProgram or None where it cannot bind)
        self._bound = {}
        self._fast = None  # (input shape, (threads, split_batches, cuts), BoundProgram, names): run()'s short way

    @property
    def _steps(self):
        """The steps of lane 0, the plan that a batch of one (and every unsplit call) runs."""
        return self._lanes[0].steps

    @property
    def input_names(self):
        return list(self.input_shapes)

    def run(self, x, threshold=None):
        """Run a float32 batch `x` (N, *input shape), or a dict name -> array for several inputs.

        threshold: None (the file's), one float in [0, 1] for every gate, or a dict
        gated node name -> threshold. Returns the output array, or a dict by name when the
        model has several outputs.
        """
        fast = self._fast
        if (fast is not None and threshold is None and type(x) is np.ndarray and x.dtype == np.float32
                and x.shape == fast[0] and fast[1] == (threads.get_num_threads(), self.split_batches, self._cuts)
                and self.bind_calls and fast[2].ready()):
            threads.keep_blas_single_threaded()  # as lanes_for does on the full path
            return fast[2].run((x,), fast[3])[0]
        return self._run(x, threshold, stats=False)[0]

    def run_with_stats(self, x, threshold=None):
        """Like run(), and also return a RunStats with per-layer, per-sample work and time."""
        return self._run(x, threshold, stats=True)

    def unbind(self):
        """Drop the bound programs (bound_program.py), so that the next call binds anew and
        reads the kernels' switches again."""
        self._bound.clear()
        self._fast = None

    def _run(self, x, threshold, stats, gate_hook=None):
        arrays = self._inputs(x)
        ctx = self._context(threshold, gate_hook)
        batch = next(iter(arrays.values())).shape[0]
        parallel = self.split_batches and self._splittable and threads.get_num_threads() >= 2
        paired = parallel and self._min_per_lane == 1  # a sample worth a thread's lane: worth two threads
        self._cut_gemms(paired)
        lanes = threads.lanes_for(batch, self._min_per_lane, parallel and not stats and gate_hook is None)
        if lanes == 1 and not stats and gate_hook is None and threshold is None:
            bound = self._bound_program(batch, self._pair_thread() if paired and batch == 1 else None)
            if bound is not None:
                outs = bound.run([arrays[t] for t in self.input_names], self.input_names)
                if len(outs) == 1 and not isinstance(x, dict):
                    # run()'s next call of the same shape, thread count and cuts goes straight
                    # to this program: the checks above cost 140-180 us a call on the AMD host
                    # with the interpreter's data cold (twenty-second session)
                    self._fast = (x.shape, (threads.get_num_threads(), self.split_batches, self._cuts), bound,
                                  self.input_names)
                return (outs[0] if len(outs) == 1 else dict(zip(self.output_names, outs))), None
        feeds = self._feeds(arrays)
        if lanes > 1:
            outs, layers = self._run_split(feeds, ctx, batch, lanes), None
        else:
            if paired and batch == 1 and gate_hook is None:
                ctx.pair = self._pair_thread()
                ctx.pair.begin()  # the helper serves until end(), spinning meanwhile
            try:
                outs, layers = self._execute(self._lanes[0], feeds, ctx, stats)
            finally:
                if ctx.pair is not None:
                    ctx.pair.end()
        result = outs[self.output_names[0]] if len(outs) == 1 else outs
        return result, (RunStats(layers) if stats else None)

    def _bound_program(self, n, pair):
        """The BoundProgram for batches of n on lane 0's plan (sharing a batch of one's
        parts with `pair` where given), bound on first need, or None where the session does
        not bind (bind_calls off, a batch above config.BIND_MAX_BATCH, steps off the CPU)
        or a step cannot be bound."""
        if not (self.bind_calls and self._splittable and n <= config.BIND_MAX_BATCH):
            return None
        program, key = self._lean(self._lanes[0]), (n, pair is not None)
        entry = self._bound.get(key)
        if entry is None or entry[0] is not program or entry[1] is not pair \
                or (entry[2] is not None and entry[2].broken):
            self._bound.pop(key, None)
            if len(self._bound) >= 2:  # each keeps a set of activations: the two bound last stay
                self._bound.pop(next(iter(self._bound)))
            shapes = [self.input_shapes[t] for t in self.input_names]
            entry = self._bound[key] = (program, pair, bind_program(program, n, shapes, pair))
        return entry[2]

    def _lean(self, plan):
        """plan's lean program (lean_steps.py), made on first need."""
        if plan.lean is None:
            plan.lean = lean_program(plan, self.input_names, self._outputs, fuse=self.fuse_fire_modules)
        return plan.lean

    def _cut_gemms(self, on):
        """Have every CPU conv cut its big GEMMs in two parts (and the banded stem its pool
        rows in two halves) where the session can run parts at once (two or more threads,
        and a sample worth them), else not, where they would only cost time (1.5-2% of a
        dense run here). The cuts change a result's last bits, so they follow the
        session's settings, never one call's batch: a batch still gives what its images
        give alone."""
        if on != self._cuts:
            for plan in self._lanes:
                _set_cuts(plan, on)
            self._cuts = on

    def _pair_thread(self):
        """The session's PairThread, made on first need (and again in a forked child)."""
        if self._pair is None or not self._pair.usable():
            self._pair = PairThread()
        return self._pair

    def _run_split(self, feeds, ctx, batch, lanes):
        """Run chunk i of the batch through lane i's kernels, chunk 0 on this thread and the
        others on the session's worker threads; the outputs joined in sample order."""
        while len(self._lanes) < lanes:
            self._lanes.append(build_plan(self._folded, self.info, CPU))
            _set_cuts(self._lanes[-1], self._cuts)
        # A forked child inherits the pool but not its threads: work sent there would never
        # run, so a new process makes a new pool.
        if self._pool_size < lanes - 1 or self._pool_pid != os.getpid():
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(lanes - 1, thread_name_prefix="pyprune-lane")
            self._pool_size, self._pool_pid = lanes - 1, os.getpid()
            weakref.finalize(self, self._pool.shutdown, wait=False)
        bounds = [batch * i // lanes for i in range(lanes + 1)]
        chunks = [{t: Act(act.data[lo:hi], None) for t, act in feeds.items()} for lo, hi in zip(bounds, bounds[1:])]
        futures = [self._pool.submit(self._execute, self._lanes[i], chunks[i], ctx, False) for i in range(1, lanes)]
        try:
            parts = [self._execute(self._lanes[0], chunks[0], ctx, False)[0]]
        finally:  # no lane may still be running when this call returns or raises
            parts += [f.result()[0] for f in futures]
        return {t: np.concatenate([p[t] for p in parts]) for t in self.output_names}

    def _execute(self, plan, feeds, ctx, stats):
        """Run `feeds` (tensor -> Act on the host) through `plan`'s steps. Returns (output
        name -> host array, per-layer stats or None). A call wholly on the CPU without
        stats runs the plan's lean program (lean_steps.py: there a fire module runs as one
        compiled call, which with ctx.pair shares each conv's parts with the helper
        thread); this loop keeps the rest."""
        if not stats and self._splittable:  # every step on the CPU, no copies
            arrays = run_lean(self._lean(plan), [feeds[t] for t in self.input_names], ctx)
            return dict(zip(self.output_names, arrays)), None
        values = {t: {CPU: act} for t, act in feeds.items()}  # tensor -> device -> Act
        layers = [] if stats else None
        buffers = {}  # concat tensor -> the buffer its producers write into
        for step in plan.steps:
            if isinstance(step, Copy):
                act = values[step.tensor][step.src]
                values[step.tensor][step.dst] = step.dst.upload(step.src.download(act))
                continue
            xs = [values[t][step.device] for t in step.inputs]
            if stats:
                step.device.synchronize()
                start = time.perf_counter()
            if step.into is not None:
                concat, first = step.into
                buf = buffers.get(concat)
                if buf is None:
                    buf = buffers[concat] = plan.concat_kernels[concat].output_buffer(xs[0].data.shape[0])
                y = step.kernel.run(xs, ctx, out=step.device.channel_window(buf, first, step.kernel.out_shape[0]))
            elif step.assemble:
                y = step.kernel.assemble(xs, buffers.pop(step.output))
            else:
                y = step.kernel.run(xs, ctx)
            if stats:
                step.device.synchronize()
                layers.append(self._layer_stats(step, xs, y, time.perf_counter() - start))
            values[step.output] = {step.device: y}
            for t in step.drop:
                values.pop(t, None)
        return {t: self._on_host(values[r]) for t, r in zip(self.output_names, self._outputs)}, layers

    @staticmethod
    def _on_host(copies):
        """A tensor's data as a host array, from whichever device holds it."""
        if CPU in copies:
            return copies[CPU].data
        device, act = next(iter(copies.items()))
        return device.to_host(act.data)

    def _inputs(self, x):
        """x as a dict input name -> array, each checked for type, dtype and shape (not yet
        for NaN and Inf: _feeds, or a bound program as it copies them in)."""
        if not isinstance(x, dict):
            if len(self.input_shapes) != 1:
                raise InputError(f"this model has inputs {self.input_names}: pass a dict name -> array")
            x = {self.input_names[0]: x}
        unknown = sorted(set(x) - set(self.input_shapes))
        missing = sorted(set(self.input_shapes) - set(x))
        if unknown or missing:
            raise InputError(f"inputs must be exactly {self.input_names}; missing {missing}, unknown {unknown}")
        values, batch = {}, None
        for name, shape in self.input_shapes.items():
            arr = x[name]
            if not isinstance(arr, np.ndarray):
                raise InputError(f"input '{name}' must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != np.float32:
                raise InputError(f"input '{name}' must be float32, got {arr.dtype} (use .astype(np.float32))")
            if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape or arr.shape[0] == 0:
                raise InputError(f"input '{name}' must have shape (N, {', '.join(map(str, shape))}) "
                                 f"with N >= 1, got {arr.shape}")
            if batch is not None and arr.shape[0] != batch:
                raise InputError(f"input '{name}' has batch {arr.shape[0]}, the others {batch}")
            batch = arr.shape[0]
            if self.device.max_batch is not None and batch > self.device.max_batch:
                raise InputError(f"input '{name}' has batch {batch}; device {self.device.name} takes at "
                                 f"most {self.device.max_batch} per call (split the batch)")
            values[name] = arr
        return values

    @staticmethod
    def _feeds(arrays):
        """The checked input arrays (_inputs) as Acts, C-contiguous, after checking them for
        NaN and Inf."""
        feeds = {}
        for name, arr in arrays.items():
            if not np.isfinite(arr).all():
                raise InputError(f"input '{name}' contains NaN or Inf")
            feeds[name] = Act(np.ascontiguousarray(arr), None)
        return feeds

    def _context(self, threshold, gate_hook):
        if threshold is None or isinstance(threshold, dict):
            per_node = dict(threshold or {})
            unknown = sorted(set(per_node) - set(self.gated_nodes))
            if unknown:
                raise InputError(f"threshold given for {unknown}, which are not gated convolutions "
                                 f"(gated: {self.gated_nodes})")
            for name, t in per_node.items():
                _check_threshold(t, name)
            return RunContext(per_node, None, gate_hook)
        _check_threshold(threshold, "threshold")
        return RunContext(None, float(threshold), gate_hook)

    @staticmethod
    def _layer_stats(step, xs, y, seconds):
        node, kernel, device = step.node, step.kernel, step.device
        host = lambda act: Act(act.data, None if act.live is None else device.to_host(act.live))  # noqa: E731
        xs, y = [host(x) for x in xs], host(y)
        n = xs[0].data.shape[0]
        executed, dense = kernel.macs(xs, y)
        c_in, c_out = xs[0].data.shape[1], y.data.shape[1]
        live_in = xs[0].live.sum(axis=1) if xs[0].live is not None else np.full(n, c_in)
        active = y.live.sum(axis=1) if y.live is not None else np.full(n, c_out)
        return LayerStats(node.name, node.op, seconds, np.asarray(executed, np.int64), int(dense),
                          c_in, live_in, c_out, active, node.op == "GatedConv2d",
                          y.live if node.op == "GatedConv2d" else None)


def _set_cuts(plan, on):
    """Session._cut_gemms for one plan's CPU convs (and banded stems)."""
    for step in plan.steps:
        kernel = getattr(step, "kernel", None)  # a Copy has none
        setter = getattr(kernel, "set_halves", None) or getattr(kernel, "set_cuts", None)
        if setter is not None:
            setter(on)


def _check_threshold(t, what):
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float, np.integer, np.floating)) \
            or not math.isfinite(t) or not 0.0 <= t <= 1.0:
        raise InputError(f"{what}: a threshold must be a number in [0, 1], got {t!r}")
