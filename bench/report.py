"""Turn pytest-benchmark JSONs into the README's tables.

    python bench/report.py bench/results.json [more runs ...]

Every ratio is taken within one run (pyprune against ONNX Runtime measured in the same
pytest session). Given several runs, each cell shows the median over the runs of those
per-run figures: on this shared machine a burst of load during one engine's rounds moves
a single run's ratio by 30% or more, and the median of three runs rides it out.
"""

import argparse
import json
import re
import sys
from collections import defaultdict
from statistics import median


def median_ms(b):
    return 1e3 * b["stats"]["median"]


def load_runs(paths):
    """Each path's pytest-benchmark JSON; a file that is missing or not such a JSON ends
    the script with a message naming it, not a traceback."""
    runs = []
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except OSError as e:
            sys.exit(f"report.py: cannot read {path}: {e.strerror}")
        except json.JSONDecodeError as e:
            sys.exit(f"report.py: {path} is not JSON ({e.msg}, line {e.lineno})")
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
            sys.exit(f"report.py: {path} has no 'benchmarks' list: not a pytest-benchmark JSON")
        runs.append(data)
    return runs


def main(paths):
    runs = load_runs(paths)
    per_run = [{b["fullname"].split("::")[-1]: b for b in data["benchmarks"]} for data in runs]
    info = runs[0].get("machine_info", {})
    cpu = info.get("cpu", {})
    dates = ", ".join(d.get("datetime", "")[:19] for d in runs)
    print(f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores; Python "
          f"{info.get('python_version')}; pyprune's GEMMs on {info.get('pyprune_blas', '?')}; "
          f"{len(runs)} run(s): {dates}")
    probes = [d.get("machine_info", {}).get("two_threads_throughput") for d in runs]
    if any(p is not None for p in probes):
        print("Two threads at once did " + ", ".join("?" if p is None else f"{p:.2f}x" for p in probes)
              + " one thread's work as each run began (bench/cores.py)")
    print()
    squeezenet(per_run)
    layers(per_run)
    misc(per_run)


def med(values, fmt):
    values = [v for v in values if v is not None]
    return fmt.format(median(values)) if values else ""


PATTERN = re.compile(r"test_(pyprune|onnxruntime|pytorch_eager)\[(\d)threads?-?(\w*?)-?(\d)\]")


def whole_network(rows):
    found = {}
    for name, b in rows.items():
        m = PATTERN.match(name.replace("1thread", "1threads"))
        if m:
            engine, threads, net, batch = m.groups()
            found[(engine, net or "dense", int(batch), int(threads))] = b
    return found


def squeezenet(per_run):
    print("SqueezeNet 1.1, 224 x 224 (median ms; ratio = time / ONNX Runtime dense, same batch, "
          "threads and run; median over runs)\n")
    print("| engine | net | batch | threads | median ms | executed MACs | vs ORT dense | MACs→time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    runs = [whole_network(rows) for rows in per_run]
    keys = sorted({k for found in runs for k in found}, key=lambda k: (k[2], k[3], k[0] != "pyprune", k[1]))
    for key in keys:
        engine, net, batch, threads = key
        ms, ratio, conv, frac = [], [], [], None
        for found in runs:
            b = found.get(key)
            if b is None:
                continue
            base = found.get(("onnxruntime", "dense", batch, threads))
            dense = found.get(("pyprune", "dense", batch, threads))
            frac = b.get("extra_info", {}).get("executed_macs_fraction", frac)
            ms.append(median_ms(b))
            ratio.append(median_ms(b) / median_ms(base) if base else None)
            if engine == "pyprune" and net != "dense" and dense and frac:
                conv.append(median_ms(dense) / median_ms(b) * frac)
        print(f"| {engine} | {net} | {batch} | {threads} | {med(ms, '{:.2f}')} | "
              f"{'' if frac is None else f'{100 * frac:.0f}%'} | {med(ratio, '{:.2f}')} | {med(conv, '{:.2f}')} |")
    print()


def per_layer(rows):
    by_layer = defaultdict(dict)
    for name, b in rows.items():
        info = b.get("extra_info", {})
        if name.startswith("test_pyprune_layer"):
            by_layer[info["layer"]][info["fraction"]] = b
        elif name.startswith("test_onnxruntime_layer"):
            by_layer[info["layer"]]["ort"] = b
    return by_layer


def layers(per_run):
    runs = [per_layer(rows) for rows in per_run]
    names = list(dict.fromkeys(layer for by_layer in runs for layer in by_layer))
    if not names:
        return
    print("Per layer, batch 1, 1 thread: pyprune time / ORT dense time at 100/75/50/25% active "
          "outputs and live inputs; MACs→time = (dense time / gated time) / (dense MACs / executed MACs)\n")
    print("| layer | ORT ms | 100% | 75% | 50% | 25% | MACs→time 50% | MACs→time 25% |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for layer in names:
        rs = [by_layer[layer] for by_layer in runs if layer in by_layer]
        ort = med([median_ms(r["ort"]) for r in rs if "ort" in r], "{:.3f}")
        cells = [med([median_ms(r[f]) / median_ms(r["ort"]) for r in rs if "ort" in r and f in r], "{:.2f}")
                 for f in (1.0, 0.75, 0.5, 0.25)]
        conv = [med([median_ms(r[1.0]) / median_ms(r[f]) * r[f]["extra_info"]["executed_macs"]
                     / r[f]["extra_info"]["dense_macs"] for r in rs if 1.0 in r and f in r], "{:.2f}")
                for f in (0.5, 0.25)]
        print(f"| {layer} | {ort} | " + " | ".join(cells) + " | " + " | ".join(conv) + " |")
    print()


def misc(per_run):
    names = list(dict.fromkeys(name for rows in per_run for name in rows))
    for name in names:
        bs = [rows[name] for rows in per_run if name in rows]
        if name.startswith("test_mnist_per_image"):
            print(f"- {name[len('test_mnist_per_image'):]} MNIST model, batch 1: "
                  f"{med([median_ms(b) for b in bs], '{:.3f}')} ms per image (median)")
        elif name.startswith("test_overhead_per_layer"):
            n = bs[0]["extra_info"]["layers"]
            kind = name[len("test_overhead_per_layer"):].strip("[]").replace("_", " ") or "element-wise"
            print(f"- overhead, {kind}: {med([1e3 * median_ms(b) / n for b in bs], '{:.2f}')} µs per layer "
                  f"(median over a chain of {n} tiny layers)")
        elif name == "test_start_time":
            print(f"- start-up, new process to first result: warm {med([warm_seconds(b) for b in bs], '{:.2f}')} s "
                  f"(median of {bs[0]['stats']['rounds']} per run){core_start(bs)}, cold (empty Numba cache) "
                  f"{med([b['extra_info']['cold_seconds'] for b in bs], '{:.2f}')} s; "
                  f"warm to the process's exit {med([median_ms(b) / 1e3 for b in bs], '{:.2f}')} s")


def core_start(bs):
    """The warm start of a core install (no SciPy), where the runs recorded it (Run 27 on)."""
    core = [b["extra_info"]["warm_core_seconds"] for b in bs if "warm_core_seconds" in b["extra_info"]]
    return f", {med(core, '{:.2f}')} s as a core install (no SciPy)" if core else ""


def warm_seconds(bench):
    """Warm start to the first result; results saved before it was recorded (Runs 1-11)
    hold only the time to the process's exit."""
    return bench["extra_info"].get("warm_seconds", median_ms(bench) / 1e3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=["bench/results.json"],
                        help="pytest-benchmark JSONs (--benchmark-json), one per run (default: bench/results.json)")
    main(parser.parse_args().runs)
