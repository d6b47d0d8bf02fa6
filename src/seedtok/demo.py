"""``seedtok demo``: the main job on the embedded default, writing ``<out>/report.json``.

Current scope: (1) reproduce the reference SEED-1 computation on the shipped golden data,
(2) build the ``tiny`` tokenizer and encode the bundled sample photos to 32 ids each.
Later stages (training, de-tokenization, the LLM) extend this report.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from seedtok.checkpoint import atomic_write_bytes

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent / "assets" / "samples"


def run_demo(out: str) -> int:
    from seedtok.api import encode_images, load_tokenizer
    from seedtok.parity import check_parity, default_golden_dir

    t0 = time.perf_counter()
    report: dict = {"stages": {}}
    golden = default_golden_dir()
    print("== 1/2 parity with the reference SEED-1 tokenizer (golden data) ==")
    if (golden / "meta.json").is_file():
        res = check_parity(golden)
        print(f"   ids equal: {res['ids_equal']}, worst max|diff| over intermediates: {res['worst']:.2e}")
        report["stages"]["parity"] = {k: v for k, v in res.items() if k != "ids"}
    else:
        print(f"   skipped: no golden data at {golden}")

    print("== 2/2 tiny tokenizer (random weights, seed 0): encode the sample photos ==")
    model = load_tokenizer(None, "tiny", seed=0)
    files = sorted(SAMPLES.glob("*.png"))
    results = encode_images(model, files, names=[f.stem for f in files])
    for r in results:
        print(f"   {r.name:<10} {' '.join(f'{i:4d}' for i in r.ids)}")
    report["stages"]["encode_tiny"] = {r.name: r.ids for r in results}
    report["wall_seconds"] = time.perf_counter() - t0
    path = Path(out) / "report.json"
    atomic_write_bytes(path, (json.dumps(report, indent=2) + "\n").encode())
    print(f"report: {path} ({report['wall_seconds']:.1f} s)")
    return 0
