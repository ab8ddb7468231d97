#!/usr/bin/env python3
"""FAISS side of `bmbench speed` (benchmarks.SearchSpeed).

Reads the gallery and probes that the Go benchmark generated (raw
little-endian float32, row-major, already L2-normalised), searches them with
FAISS's exact IndexFlatIP (f32, BLAS for batches) and IndexScalarQuantizer
QT_8bit (the 8-bit scan FAISS users would compare an int8 index with), on the
same number of threads, and prints one JSON object on stdout:

  flat_probe_s, flat_batch_s, sq8_probe_s, sq8_batch_s: median seconds per
      probe searched alone, and mean seconds per probe in one batch;
  flat_ids: FAISS flat top-k row numbers of every probe (the Go side checks
      them against its own exact search as a sanity check of the setup);
  version, threads.

Debian's python3-faiss (1.7.3) and python3-numpy provide the modules.
"""
import argparse
import json
import sys
import time

import faiss
import numpy as np


def timed_single(index, probes, k, n):
    times = []
    for i in range(min(n, len(probes))):
        q = probes[i : i + 1]
        t0 = time.perf_counter()
        index.search(q, k)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def timed_batch(index, probes, k, batch):
    q = probes[:batch]
    t0 = time.perf_counter()
    _, ids = index.search(q, k)
    return (time.perf_counter() - t0) / len(q), ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gallery", required=True)
    ap.add_argument("--probes", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--single", type=int, default=16, help="probes timed one at a time")
    ap.add_argument("--batch", type=int, default=256, help="probes in the timed batch")
    ap.add_argument("--sq8", action="store_true", help="also time IndexScalarQuantizer QT_8bit")
    a = ap.parse_args()

    faiss.omp_set_num_threads(a.threads)
    g = np.fromfile(a.gallery, dtype="<f4").reshape(-1, a.dim)
    p = np.fromfile(a.probes, dtype="<f4").reshape(-1, a.dim)
    out = {"version": faiss.__version__, "threads": a.threads, "n": len(g), "probes": len(p)}

    flat = faiss.IndexFlatIP(a.dim)
    flat.add(g)
    out["flat_probe_s"] = timed_single(flat, p, a.k, a.single)
    out["flat_batch_s"], ids = timed_batch(flat, p, a.k, a.batch)
    # The batch covers the first a.batch probes; search the rest for the ids.
    if len(p) > a.batch:
        _, rest = flat.search(p[a.batch :], a.k)
        ids = np.vstack([ids, rest])
    out["flat_ids"] = ids.tolist()
    del flat

    if a.sq8:
        sq = faiss.IndexScalarQuantizer(a.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        sq.train(g)
        sq.add(g)
        out["sq8_probe_s"] = timed_single(sq, p, a.k, a.single)
        out["sq8_batch_s"], _ = timed_batch(sq, p, a.k, a.batch)

    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
