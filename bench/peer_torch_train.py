#!/usr/bin/env python3
"""PyTorch training on the CPU, timed the way tiller-bench-train times tiller (the peer).

A step: --batch sequences of --seq random tokens (the same generator settings do not matter: the
cost of a step does not depend on the token values), HF transformers' LlamaForCausalLM forward with
the loss on every token after the first, backward, gradient clipping at 1.0 and torch.optim.AdamW.
LoRA through HF PEFT (dropout 0, alpha = rank, adapters in F32 over the folder's weight dtype);
full training makes every parameter trainable. The median step after one warm-up step; peak RSS.
Appends a JSON line with engine "pytorch" (fields as tiller-bench-train's) to --out.

Needs torch, transformers and peft (e.g. the fixtures venv: .venv-fixtures/bin/python).
"""
import argparse
import datetime
import json
import resource
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--shape", required=True)
    p.add_argument("--train", choices=["lora", "full"], default="lora")
    p.add_argument("--lora-targets", default="q_proj,v_proj")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", required=True)
    p.add_argument("--commit", default="unknown")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype="auto", attn_implementation="sdpa")
    dtype = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}[model.dtype]
    if a.train == "lora":
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(r=a.lora_rank, lora_alpha=a.lora_rank, lora_dropout=0.0,
                         target_modules=a.lora_targets.split(","), init_lora_weights=True)
        model = get_peft_model(model, cfg, autocast_adapter_dtype=True)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (a.batch, a.seq), generator=torch.Generator().manual_seed(7))

    times = []
    for step in range(a.steps + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step > 0:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    tok_s = a.batch * a.seq / median
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"pytorch {a.shape} {a.train} ({dtype}, torch {torch.__version__}, {a.threads} threads): batch {a.batch} x "
          f"{a.seq} tokens: {tok_s:.1f} tok/s (median of {len(times)} steps); peak RSS {peak_mb:.0f} MB", flush=True)
    line = {"date": datetime.date.today().isoformat(), "commit": a.commit, "device": a.device, "engine": "pytorch",
            "torch": torch.__version__, "shape": a.shape, "dtype": dtype, "train": a.train,
            "lora_targets": a.lora_targets if a.train == "lora" else "", "lora_rank": a.lora_rank,
            "threads": a.threads, "batch": a.batch, "seq": a.seq, "tok_s": tok_s, "step_seconds_median": median,
            "peak_rss_mb": peak_mb}
    with open(a.out, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
