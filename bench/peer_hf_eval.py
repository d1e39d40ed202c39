#!/usr/bin/env python3
"""HF transformers doing what `tiller eval` does: batched greedy generate() of the prompts, then
one forward per guard prompt (Llama Guard 3 format) read at the verdict position, P("unsafe").

    peer_hf_eval.py MODEL PROMPT_IDS.json MAX_TOKENS GUARD GUARD_TEXTS.json THREADS BATCH

PROMPT_IDS.json: token-id lists (as tiller tokenized them). GUARD_TEXTS.json: the guard prompt texts
(rendered from tiller's answers, so both engines judge the same text), tokenized here with the
guard's tokenizer.json. Prints one JSON line with the timings. Needs torch, transformers and
tokenizers (tests/fixtures/requirements.txt pins them).
"""
import json
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

model_dir, ids_file, max_tokens, guard_dir, guard_file, threads, batch = sys.argv[1:8]
max_tokens, threads, batch = int(max_tokens), int(threads), int(batch)
torch.set_num_threads(threads)
prompts = json.load(open(ids_file))
guard_texts = json.load(open(guard_file))

model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
pad = model.config.eos_token_id if isinstance(model.config.eos_token_id, int) else model.config.eos_token_id[0]
t0 = time.perf_counter()
generated = 0
with torch.inference_mode():
    for start in range(0, len(prompts), batch):
        group = prompts[start:start + batch]
        width = max(len(g) for g in group)
        input_ids = torch.tensor([[pad] * (width - len(g)) + g for g in group])  # left padding
        mask = torch.tensor([[0] * (width - len(g)) + [1] * len(g) for g in group])
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens, min_new_tokens=max_tokens,
                             do_sample=False, pad_token_id=pad)
        generated += (out.shape[1] - width) * len(group)
gen_seconds = time.perf_counter() - t0
del model

guard = AutoModelForCausalLM.from_pretrained(guard_dir, dtype=torch.float32).eval()
tok = Tokenizer.from_file(f"{guard_dir}/tokenizer.json")
unsafe = tok.encode("unsafe", add_special_tokens=False).ids[0]
t1 = time.perf_counter()
guard_ids = [tok.encode(t, add_special_tokens=False).ids for t in guard_texts]
scores = []
with torch.inference_mode():
    for start in range(0, len(guard_ids), batch):
        group = guard_ids[start:start + batch]
        width = max(len(g) for g in group)
        input_ids = torch.tensor([[0] * (width - len(g)) + g for g in group])
        mask = torch.tensor([[0] * (width - len(g)) + [1] * len(g) for g in group])
        logits = guard(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1, :]
        scores += torch.softmax(logits.float(), dim=-1)[:, unsafe].tolist()
judge_seconds = time.perf_counter() - t1
print(json.dumps({"generate_seconds": round(gen_seconds, 3), "judge_seconds": round(judge_seconds, 3),
                  "seconds": round(gen_seconds + judge_seconds, 3), "generated_tokens": generated,
                  "guard_prompt_tokens": sum(len(g) for g in guard_ids), "scores_head": scores[:3]}))
