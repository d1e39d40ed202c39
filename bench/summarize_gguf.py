#!/usr/bin/env python3
"""Summarizes bench/run_gguf.sh: per model, phase and batch, the median tok/s of each engine over
the alternating rounds, their ratio, bytes per token and the fraction of the bandwidth measured in
the same rounds (tiller-bench-inference's STREAM copy figure; llama.cpp's fraction uses the same
bytes per token). Appends JSON lines to --out and prints a Markdown table. Standard library only.
"""
import argparse
import datetime
import glob
import json
import os
import statistics
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--device", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer", default="llama.cpp")
    a = ap.parse_args()

    tok = defaultdict(list)  # (model, phase, batch, engine) -> [tok/s per round]
    info = {}  # (model, phase, batch) -> tiller's line (bytes per token, dtype)
    bw = []
    for path in sorted(glob.glob(os.path.join(a.raw, "tiller.*.jsonl"))):
        for line in open(path):
            j = json.loads(line)
            key = (j["shape"], j["phase"], j["batch"])
            tok[key + ("tiller",)].append(j["tok_s"])
            info[key] = j
            bw.append(j["measured_bw_gbs"])
    for path in sorted(glob.glob(os.path.join(a.raw, "llama-bench.*.jsonl"))):
        model = os.path.basename(path).split(".", 2)[2][: -len(".jsonl")]
        for line in open(path):
            j = json.loads(line)
            phase = "prefill" if j["n_prompt"] else "decode"
            tok[(model, phase, 1, "llama.cpp")].append(j["avg_ts"])
    for path in sorted(glob.glob(os.path.join(a.raw, "batched.*.jsonl"))):
        model = os.path.basename(path).split(".", 2)[2][: -len(".jsonl")]
        for line in open(path):
            j = json.loads(line)
            tok[(model, "decode", j["pl"], "llama.cpp")].append(j["speed_tg"])

    bw_gbs = statistics.median(bw)
    date = datetime.date.today().isoformat()
    print(f"\n{a.device}, {a.threads} threads; bandwidth (STREAM copy, median of rounds) {bw_gbs:.1f} GB/s; "
          f"peer {a.peer}; medians of {len(glob.glob(os.path.join(a.raw, 'tiller.*.jsonl')))} alternating rounds\n")
    print("| model | weights | phase | tiller tok/s | llama.cpp tok/s | ratio | MB/token | tiller % bw | llama.cpp % bw |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    with open(a.out, "a") as out:
        for key in sorted(info, key=lambda k: (k[0], k[1] != "prefill", k[2])):
            model, phase, batch = key
            t, p = tok.get(key + ("tiller",), []), tok.get(key + ("llama.cpp",), [])
            if not t or not p:
                continue
            mt, mp = statistics.median(t), statistics.median(p)
            j = info[key]
            bpt = j["bytes_per_token"]
            frac = lambda v: v * bpt / 1e9 / bw_gbs if phase == "decode" else None  # noqa: E731
            label = "prefill 512" if phase == "prefill" else f"decode batch {batch}"
            fr_t, fr_p = frac(mt), frac(mp)
            print(f"| {model} | {j['dtype']} | {label} | {mt:.1f} | {mp:.1f} | {mt / mp:.2f}x | {bpt / 1e6:.1f} | "
                  f"{'' if fr_t is None else f'{100 * fr_t:.0f}%'} | {'' if fr_p is None else f'{100 * fr_p:.0f}%'} |")
            for engine, vals, med, fr in (("tiller", t, mt, fr_t), ("llama.cpp", p, mp, fr_p)):
                rec = {"date": date, "commit": a.commit, "device": a.device, "engine": engine,
                       "peer": a.peer if engine != "tiller" else None, "model": model, "dtype": j["dtype"],
                       "threads": a.threads, "phase": phase, "batch": batch, "tok_s_median": med, "tok_s_rounds": vals,
                       "bytes_per_token": bpt, "measured_bw_gbs": bw_gbs, "ratio_tiller_over_llama_cpp": mt / mp}
                if fr is not None:
                    rec["bw_fraction"] = fr
                out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
