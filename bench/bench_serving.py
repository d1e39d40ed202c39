#!/usr/bin/env python3
"""Serving benchmark: `tiller batch` throughput at several batch sizes, `tiller serve` latency
percentiles under concurrent streaming load, and HF transformers' batched generate() on the same
token ids when a venv with torch + transformers is at hand. Appends JSON lines to
bench/results/serving.jsonl.

    bench/bench_serving.py [--model DIR] [--prompts 1000] [--max-tokens 32] [--batch-sizes 1,8,32,64]

Everything is greedy with end-of-sequence ignored, so every engine does the same work: prompts x
max-tokens new tokens. Only the standard library is needed on the tiller side.
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

ANIMALS = ["cat", "dog", "bird", "fox", "bear", "girl", "boy", "frog", "duck", "mouse"]
NAMES = ["Tim", "Sue", "Max", "Lily", "Ben", "Amy", "Sam", "Tom", "Mia", "Zoe", "Leo"]
PLACES = ["park", "forest", "garden", "house", "school", "river", "town"]


def prompts_text(n):
    """Deterministic, varied prompts of 10-40 tokens (short, as jailbreak prompt sets are)."""
    out = []
    for i in range(n):
        p = f"Once upon a time, a little {ANIMALS[i % 10]} named {NAMES[i % 11]} went to the {PLACES[i % 7]}."
        if i % 3 == 0:
            p += f" It was a sunny day and {NAMES[(i + 3) % 11]} wanted to play."
        out.append(p)
    return out


def percentiles(values, qs=(50, 90, 99)):
    if not values:
        return {}
    v = sorted(values)
    return {f"p{q}": round(v[min(len(v) - 1, int(len(v) * q / 100))], 3) for q in qs}


class Server:
    def __init__(self, tiller, model, threads, max_batch):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen([tiller, "serve", "--model", model, "--port", "0", "--threads", str(threads),
                                      "--max-batch", str(max_batch), "--max-queue", "1024"],
                                     stderr=self.log, stdout=subprocess.DEVNULL)
        self.port = None
        for _ in range(300):
            text = Path(self.log.name).read_text()
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if not self.port:
            raise SystemExit("tiller serve did not start:\n" + Path(self.log.name).read_text())

    def post(self, path, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return json.loads(data)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        os.unlink(self.log.name)


def stream_one(port, ids, max_tokens, record):
    """One streaming request; records time to first token, gaps between tokens and the total."""
    body = {"prompt": ids, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
            "return_token_ids": True}
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    first, last, gaps, tokens = None, None, [], 0
    buf = b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if not event.startswith(b"data: ") or event == b"data: [DONE]":
                continue
            n = len(json.loads(event[6:])["choices"][0].get("token_ids", []))
            if n == 0:
                continue
            now = time.perf_counter()
            if first is None:
                first = now
            else:  # a merged event of n tokens counts as n gaps of equal length
                gaps.extend([(now - last) / n] * n)
            last = now
            tokens += n
    c.close()
    record.append({"ttft": first - t0 if first else None, "gaps": gaps, "e2e": time.perf_counter() - t0,
                   "tokens": tokens})


def server_latency(server, ids_list, max_tokens, clients, n_requests):
    records, lock, next_i = [], threading.Lock(), [0]

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n_requests:
                return
            stream_one(server.port, ids_list[i % len(ids_list)], max_tokens, records)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = lambda xs: percentiles([x * 1000 for x in xs if x is not None])
    return {"clients": clients, "requests": len(records), "seconds": round(wall, 3),
            "requests_per_s": round(len(records) / wall, 2),
            "output_tokens_per_s": round(sum(r["tokens"] for r in records) / wall, 1),
            "ttft_ms": ms([r["ttft"] for r in records]), "itl_ms": ms([g for r in records for g in r["gaps"]]),
            "e2e_ms": ms([r["e2e"] for r in records])}


def tiller_batch(tiller, model, ids_list, max_tokens, batch, threads, workdir):
    inp, out = Path(workdir) / "in.jsonl", Path(workdir) / f"out-{batch}.jsonl"
    with open(inp, "w") as f:
        for i, ids in enumerate(ids_list):
            f.write(json.dumps({"id": i, "prompt": ids, "max_tokens": max_tokens, "temperature": 0,
                                "ignore_eos": True}) + "\n")
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    subprocess.run([tiller, "batch", "--model", model, "--input", str(inp), "--output", str(out), "--threads",
                    str(threads), "--max-batch", str(batch), "--quiet"], check=True, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    lines = [json.loads(l) for l in open(out)]
    tokens = sum(l["completion_tokens"] for l in lines)
    assert len(lines) == len(ids_list), f"{len(lines)} of {len(ids_list)} results"
    return {"seconds": round(wall, 3), "requests_per_s": round(len(lines) / wall, 2),
            "output_tokens_per_s": round(tokens / wall, 1)}


HF_SCRIPT = r"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM

model_dir, ids_file, max_tokens, threads, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
ids_list = json.load(open(ids_file))
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
pad = 0
for b in [int(x) for x in batches.split(",")]:
    t0, tokens = time.perf_counter(), 0
    with torch.inference_mode():
        for s in range(0, len(ids_list), b):
            group = ids_list[s:s + b]
            width = max(len(g) for g in group)
            input_ids = torch.tensor([[pad] * (width - len(g)) + g for g in group])  # left padding
            mask = torch.tensor([[0] * (width - len(g)) + [1] * len(g) for g in group])
            out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens,
                                 min_new_tokens=max_tokens, do_sample=False, pad_token_id=pad)
            tokens += (out.shape[1] - width) * len(group)
    wall = time.perf_counter() - t0
    print(json.dumps({"batch_size": b, "seconds": round(wall, 3), "requests_per_s": round(len(ids_list) / wall, 2),
                      "output_tokens_per_s": round(tokens / wall, 1)}), flush=True)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT.parent / "shared" / "models" / "stories260K"))
    ap.add_argument("--tiller", default=str(ROOT / "build" / "tiller"))
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="1,8,32,64")
    ap.add_argument("--threads", type=int, default=1, help="compute threads for every engine")
    ap.add_argument("--clients", type=int, default=32, help="concurrent streaming clients for the latency run")
    ap.add_argument("--server-requests", type=int, default=256)
    ap.add_argument("--hf-python", default=str(ROOT / ".venv-fixtures" / "bin" / "python"),
                    help="a python with torch + transformers; skipped when absent")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serving.jsonl"))
    args = ap.parse_args()
    if not Path(args.model, "config.json").exists():
        raise SystemExit(f"{args.model}: no model there (give --model DIR)")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    common = {"bench": "serving", "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": Path(args.model).name,
              "prompts": args.prompts, "max_tokens": args.max_tokens, "threads": args.threads, **machine()}
    results = []

    def emit(rec):
        rec = {**common, **rec}
        results.append(rec)
        print(json.dumps(rec), flush=True)

    server = Server(args.tiller, args.model, args.threads, max(batches))
    try:
        texts = prompts_text(args.prompts)
        ids_list = [server.post("/tokenize", {"prompt": t})["tokens"] for t in texts]
        emit({"engine": "tiller serve", "max_batch": max(batches),
              **server_latency(server, ids_list, args.max_tokens, args.clients, args.server_requests)})
    finally:
        server.stop()

    with tempfile.TemporaryDirectory() as work:
        for b in batches:
            emit({"engine": "tiller batch", "batch_size": b,
                  **tiller_batch(args.tiller, args.model, ids_list, args.max_tokens, b, args.threads, work)})
        if Path(args.hf_python).exists():
            ids_file = Path(work) / "ids.json"
            ids_file.write_text(json.dumps(ids_list))
            script = Path(work) / "hf.py"
            script.write_text(HF_SCRIPT)
            proc = subprocess.run([args.hf_python, str(script), args.model, str(ids_file), str(args.max_tokens),
                                   str(args.threads), args.batch_sizes], capture_output=True, text=True)
            if proc.returncode != 0:
                print("HF transformers run failed; skipped:\n" + proc.stderr[-2000:], file=sys.stderr)
            for line in proc.stdout.splitlines():
                emit({"engine": "hf transformers generate", **json.loads(line)})
        else:
            print(f"{args.hf_python} not found: HF transformers comparison skipped", file=sys.stderr)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(f"\n{'engine':28} {'batch':>6} {'req/s':>9} {'out tok/s':>10}")
    for r in results:
        if "batch_size" in r:
            print(f"{r['engine']:28} {r['batch_size']:>6} {r['requests_per_s']:>9} {r['output_tokens_per_s']:>10}")
    for r in results:
        if r["engine"] == "tiller serve":
            print(f"tiller serve, {r['clients']} streaming clients: TTFT {r['ttft_ms']} ms, per-token {r['itl_ms']} ms, "
                  f"{r['output_tokens_per_s']} tok/s")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
