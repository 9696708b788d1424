"""bench/report.py: ratios are taken within each run, then the median over runs is shown."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("report.py")


def run_json(path, pyprune_ms, ort_ms, gated_ms):
    bench = lambda name, ms, **extra: {"fullname": f"bench/test_squeezenet.py::{name}",  # noqa: E731
                                       "stats": {"median": ms / 1e3, "rounds": 10}, "extra_info": extra}
    data = {"datetime": "2026-11-26T12:00:00", "machine_info": {"cpu": {"brand_raw": "cpu", "count": 2}},
            "benchmarks": [bench("test_pyprune[1thread-dense-1]", pyprune_ms, executed_macs_fraction=1.0),
                           bench("test_pyprune[1thread-gated50-1]", gated_ms, executed_macs_fraction=0.36),
                           bench("test_onnxruntime[1thread-dense-1]", ort_ms)]}
    path.write_text(json.dumps(data))
    return str(path)


def test_each_ratio_is_a_median_of_per_run_ratios(tmp_path):
    # Run 2's ORT rounds met a burst of load: its ratio is an outlier that the median drops.
    runs = [run_json(tmp_path / "1.json", 8.0, 5.0, 6.0), run_json(tmp_path / "2.json", 8.0, 10.0, 6.0),
            run_json(tmp_path / "3.json", 9.0, 6.0, 6.3)]
    out = subprocess.run([sys.executable, str(SCRIPT), *runs], capture_output=True, text=True, check=True).stdout
    assert "3 run(s)" in out
    assert "| pyprune | dense | 1 | 1 | 8.00 | 100% | 1.50 |  |" in out      # ratios 1.6, 0.8, 1.5
    assert "| pyprune | gated50 | 1 | 1 | 6.00 | 36% | 1.05 | 0.48 |" in out  # 1.2, 0.6, 1.05; 0.48, 0.48, 0.51


def test_overhead_lines_name_the_kind_of_layer(tmp_path):
    def bench(kind, ms):
        return {"fullname": f"bench/test_mnist_and_overhead.py::test_overhead_per_layer[{kind}]",
                "stats": {"median": ms / 1e3, "rounds": 10}, "extra_info": {"layers": 100}}

    data = {"datetime": "2026-11-26T12:00:00", "machine_info": {"cpu": {"brand_raw": "cpu", "count": 2}},
            "benchmarks": [bench("relu", 0.25), bench("gated_conv", 1.2)]}
    path = tmp_path / "1.json"
    path.write_text(json.dumps(data))
    out = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, check=True).stdout
    assert "- overhead, relu: 2.50 µs per layer (median over a chain of 100 tiny layers)" in out
    assert "- overhead, gated conv: 12.00 µs per layer" in out


def test_start_up_line_gives_the_time_to_the_first_result(tmp_path):
    def run(path, to_exit_s, extra):
        bench = {"fullname": "bench/test_mnist_and_overhead.py::test_start_time",
                 "stats": {"median": to_exit_s, "rounds": 3}, "extra_info": {"cold_seconds": 12.0, **extra}}
        data = {"datetime": "2026-11-26T12:00:00", "machine_info": {"cpu": {"brand_raw": "cpu", "count": 2}},
                "benchmarks": [bench]}
        path.write_text(json.dumps(data))
        return str(path)

    new = run(tmp_path / "new.json", 1.4, {"warm_seconds": 1.1})
    old = run(tmp_path / "old.json", 1.5, {})  # saved before warm_seconds was recorded
    out = subprocess.run([sys.executable, str(SCRIPT), new], capture_output=True, text=True, check=True).stdout
    assert ("warm 1.10 s (median of 3 per run), cold (empty Numba cache) 12.00 s; "
            "warm to the process's exit 1.40 s") in out
    out = subprocess.run([sys.executable, str(SCRIPT), old], capture_output=True, text=True, check=True).stdout
    assert "warm 1.50 s" in out
    assert "core install" not in out
    core = run(tmp_path / "core.json", 1.4, {"warm_seconds": 1.1, "warm_core_seconds": 0.9})
    out = subprocess.run([sys.executable, str(SCRIPT), core], capture_output=True, text=True, check=True).stdout
    assert "warm 1.10 s (median of 3 per run), 0.90 s as a core install (no SciPy), cold" in out


def test_the_cores_probe_is_printed_per_run_where_recorded(tmp_path):
    paths = [run_json(tmp_path / f"{i}.json", 8.0, 5.0, 6.0) for i in range(3)]
    out = subprocess.run([sys.executable, str(SCRIPT), *paths], capture_output=True, text=True, check=True).stdout
    assert "Two threads at once" not in out  # runs saved before the probe was recorded
    for path, probe in zip(paths[:2], (1.8, 0.93)):
        data = json.loads(Path(path).read_text())
        data["machine_info"]["two_threads_throughput"] = probe
        Path(path).write_text(json.dumps(data))
    out = subprocess.run([sys.executable, str(SCRIPT), *paths], capture_output=True, text=True, check=True).stdout
    assert "Two threads at once did 1.80x, 0.93x, ? one thread's work as each run began" in out


def test_a_missing_or_foreign_file_ends_with_a_message_naming_it(tmp_path):
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"rows": []}))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    for path, words in ((tmp_path / "absent.json", "cannot read"), (foreign, "no 'benchmarks' list"),
                        (broken, "is not JSON")):
        done = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
        assert done.returncode != 0
        assert str(path) in done.stderr and words in done.stderr
        assert "Traceback" not in done.stderr
    usage = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "pytest-benchmark JSONs" in usage.stdout
