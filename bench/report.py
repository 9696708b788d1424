"""Turn a pytest-benchmark JSON into the README's tables (medians and ratios from the same run).

    python bench/report.py bench/results.json
"""

import json
import re
import sys
from collections import defaultdict


def median_ms(b):
    return 1e3 * b["stats"]["median"]


def main(path):
    data = json.load(open(path))
    rows = {b["fullname"].split("::")[-1]: b for b in data["benchmarks"]}
    cpu = data.get("machine_info", {}).get("cpu", {})
    print(f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores; Python "
          f"{data.get('machine_info', {}).get('python_version')}; {data.get('datetime', '')[:19]}\n")
    squeezenet(rows)
    layers(rows)
    misc(rows)


def squeezenet(rows):
    print("SqueezeNet 1.1, 224 x 224 (median ms; ratio = time / ONNX Runtime dense, same batch and threads)\n")
    print("| engine | net | batch | threads | median ms | executed MACs | vs ORT dense | MACs→time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    pattern = re.compile(r"test_(pyprune|onnxruntime|pytorch_eager)\[(\d)threads?-?(\w*?)-?(\d)\]")
    found = {}
    for name, b in rows.items():
        m = pattern.match(name.replace("1thread", "1threads"))
        if m:
            engine, threads, net, batch = m.groups()
            found[(engine, net or "dense", int(batch), int(threads))] = b
    for key in sorted(found, key=lambda k: (k[2], k[3], k[0] != "pyprune", k[1])):
        engine, net, batch, threads = key
        b = found[key]
        base = found.get(("onnxruntime", "dense", batch, threads))
        dense = found.get(("pyprune", "dense", batch, threads))
        frac = b.get("extra_info", {}).get("executed_macs_fraction")
        conv = ""
        if engine == "pyprune" and net != "dense" and dense and frac:
            conv = f"{(median_ms(dense) / median_ms(b)) * frac:.2f}"
        print(f"| {engine} | {net} | {batch} | {threads} | {median_ms(b):.2f} | "
              f"{'' if frac is None else f'{100 * frac:.0f}%'} | "
              f"{'' if not base else f'{median_ms(b) / median_ms(base):.2f}'} | {conv} |")
    print()


def layers(rows):
    by_layer = defaultdict(dict)
    for name, b in rows.items():
        info = b.get("extra_info", {})
        if name.startswith("test_pyprune_layer"):
            by_layer[info["layer"]][info["fraction"]] = b
        elif name.startswith("test_onnxruntime_layer"):
            by_layer[info["layer"]]["ort"] = b
    if not by_layer:
        return
    print("Per layer, batch 1, 1 thread: pyprune time / ORT dense time at 100/75/50/25% active "
          "outputs and live inputs; MACs→time = (dense time / gated time) / (dense MACs / executed MACs)\n")
    print("| layer | ORT ms | 100% | 75% | 50% | 25% | MACs→time 50% | MACs→time 25% |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for layer, r in by_layer.items():
        ort = r.get("ort")
        cells = [f"{median_ms(r[f]) / median_ms(ort):.2f}" if ort and f in r else "" for f in (1.0, 0.75, 0.5, 0.25)]
        conv = []
        for f in (0.5, 0.25):
            if 1.0 in r and f in r:
                e = r[f]["extra_info"]
                conv.append(f"{(median_ms(r[1.0]) / median_ms(r[f])) * e['executed_macs'] / e['dense_macs']:.2f}")
            else:
                conv.append("")
        print(f"| {layer} | {'' if not ort else f'{median_ms(ort):.3f}'} | " + " | ".join(cells) + " | " + " | ".join(conv) + " |")
    print()


def misc(rows):
    for name, b in rows.items():
        if name.startswith("test_mnist_per_image"):
            print(f"- {name[len('test_mnist_per_image'):]} MNIST model, batch 1: {median_ms(b):.3f} ms per image (median)")
        elif name == "test_overhead_per_layer":
            n = b["extra_info"]["layers"]
            print(f"- overhead: {1e3 * median_ms(b) / n:.2f} µs per layer (median over a chain of {n} tiny layers)")
        elif name == "test_start_time":
            print(f"- start-up, new process to first result: warm {median_ms(b) / 1e3:.2f} s (median of "
                  f"{b['stats']['rounds']}), cold (empty Numba cache) {b['extra_info']['cold_seconds']:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json")
