"""Print the benchmark JSON as a Markdown table of medians and ratios to ONNX Runtime dense.

    python bench/report.py bench/results.json
"""

import json
import platform
import sys


def main(path):
    data = json.load(open(path))
    rows = {b["name"]: b for b in data["benchmarks"]}
    peers = {name: b["stats"]["median"] for name, b in rows.items() if name.startswith("test_onnxruntime[") and "-dense]" in name}
    base = min(peers.values()) if peers else None
    info = data.get("machine_info", {})
    print(f"machine: {info.get('cpu', {}).get('brand_raw', platform.processor())}, "
          f"{info.get('cpu', {}).get('count', '?')} cores; python {info.get('python_version')}; {data.get('datetime', '')}")
    print()
    print("| benchmark | median ms | executed MACs | vs fastest ORT dense |")
    print("|---|---:|---:|---:|")
    for name, b in rows.items():
        median = b["stats"]["median"]
        frac = b.get("extra_info", {}).get("executed_macs_fraction")
        print(f"| {name} | {1e3 * median:.2f} | {'' if frac is None else f'{100 * frac:.0f}%'} | "
              f"{'' if base is None else f'{median / base:.2f}'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json")
