"""Warmth of the engine worker: the first filter run (worker start, model load, style encoding) against the second
run on the same image (model and style card already in memory). Target: the second run is at least 2x faster.

Default: through the worker client, exactly as the GIMP plug-in calls it. ``--gimp``: through the real GIMP 3 filter
(two runs in one GIMP session; needs the host of .ci/hosts/gimp.sh).

Uses the bundled default model if present, else a model with seeded random weights (the speed is the same).

    python bench/worker.py [--size 512] [--style-size 512] [--runs 3] [--gimp]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from adain_core import store  # noqa: E402
from adain_core.testing import make_random_model  # noqa: E402
from adain_core.worker import WorkerClient  # noqa: E402


def _assets(tmp: Path, size: int) -> tuple[str, str, str, np.ndarray]:
    bundled = store.bundled_models().get("default")
    model, model_name = (str(bundled), "bundled default") if bundled is not None else (
        str(make_random_model(tmp / "random.safetensors", seed=0)), "random weights")
    rng = np.random.default_rng(0)
    style = tmp / "style.png"
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(style)
    yy, xx = np.mgrid[0:size, 0:size]
    content = np.stack([xx % 256, yy % 256, (xx + yy) % 256, np.full_like(xx, 255)], axis=2).astype(np.uint8)
    return model, model_name, str(style), content


def bench_client(tmp: Path, model: str, style: str, content: np.ndarray, style_size: int,
                 runs: int) -> list[dict]:
    client = WorkerClient(sys.executable, directory=tmp / "rt", env={"PYTHONPATH": str(REPO)}, idle_timeout=60)
    rows = []
    try:
        for index in range(runs):
            started = time.perf_counter()
            result = client.stylize(content, style, model=model, style_size=style_size)
            rows.append({"run": index + 1, "wall": time.perf_counter() - started, **result.timings,
                         "cached": result.cache.get("model") and all(result.cache.get("styles", []))})
    finally:
        client.shutdown()
    return rows


def bench_gimp(tmp: Path, model: str, style: str, content: np.ndarray, style_size: int, runs: int) -> list[dict]:
    spec = importlib.util.spec_from_file_location("_gimp_conftest", REPO / "tests" / "gimp_plugin" / "conftest.py")
    harness = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = harness
    spec.loader.exec_module(harness)
    import subprocess

    if subprocess.run(["bash", str(harness.GIMP_SH), "status"], capture_output=True).returncode != 0:
        sys.exit(f"GIMP host not set up: run {harness.GIMP_SH}")
    host = harness.GimpHost("", harness.ENGINE_PYTHON)
    (tmp / "content.raw").write_bytes(content.tobytes())
    height, width = content.shape[:2]
    image = {"content": "content.raw", "size": [width, height], "canvas": [width, height], "offsets": [0, 0]}
    scenarios = [{"id": f"run{i + 1}", "kind": "filter", "image": image,
                  "args": {"style-file": style, "style-size": style_size, "output": "replace"}} for i in range(runs)]
    (tmp / "engine.json").write_text(json.dumps({"python": str(harness.ENGINE_PYTHON)}))
    proc = host.run_batch(tmp, {"scenarios": scenarios},
                          env={"ADAIN_CONFIG": str(tmp / "engine.json"), "ADAIN_MODEL": model})
    results = json.loads((tmp / "results.json").read_text()) if (tmp / "results.json").exists() else {}
    rows = []
    for i in range(runs):
        outcome = results.get(f"run{i + 1}", {})
        if outcome.get("status") != "success":
            sys.exit(f"GIMP run {i + 1} failed: {outcome}\n{proc.stderr[-3000:]}")
        rows.append({"run": i + 1, "wall": outcome["seconds"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="content image side in px")
    parser.add_argument("--style-size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gimp", action="store_true", help="through the real GIMP 3 filter")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adain-bench-worker-") as name:
        tmp = Path(name)
        model, model_name, style, content = _assets(tmp, args.size)
        run = bench_gimp if args.gimp else bench_client
        rows = run(tmp, model, style, content, args.style_size, args.runs)
    print(f"worker warmth: {args.size}x{args.size} px, style size {args.style_size}, model: {model_name}, "
          f"via {'GIMP 3 filter' if args.gimp else 'worker client'}")
    columns = [c for c in ("run", "wall", "load_model", "encode_style", "stylize", "cached") if c in rows[0]]
    print(" | ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print(" | ".join(f"{row[c]:>12.3f}" if isinstance(row[c], float) else f"{row[c]!s:>12}" for c in columns))
    first, second = rows[0]["wall"], rows[1]["wall"] if len(rows) > 1 else float("nan")
    speedup = first / second
    print(f"first {first:.3f} s, second {second:.3f} s: second run {speedup:.1f}x faster "
          f"({'meets' if speedup >= 2 else 'MISSES'} the 2x target)")


if __name__ == "__main__":
    main()
