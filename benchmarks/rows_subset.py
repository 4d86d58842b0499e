"""Time a few bench rows at some shapes, interleaved in one run (lstmkit.bench's own timing): for re-checking a
handful of targets without the whole bench.

    python benchmarks/rows_subset.py fastrnns,device-inference "fused,intervened,GRU fused,GRU intervened" train
    python benchmarks/rows_subset.py device-inference "torch.nn,trace,peephole,coupled,layer_norm,zoneout"

Arguments: shapes (comma-separated), rows (comma-separated, as `lstmkit bench` names them; a row's ratio needs its
baseline row, e.g. torch.nn), then `train` to add forward+backward to inference.
"""

import sys

import torch

from lstmkit.bench.report import format_table
from lstmkit.bench.timing import bench_shape

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    shapes, rows = sys.argv[1].split(","), sys.argv[2].split(",")
    modes = ["infer", "train"] if "train" in sys.argv[3:] else ["infer"]
    for shape in shapes:
        print(format_table(bench_shape(shape, rows, [torch.float32], 7, None, modes)), flush=True)
