#!/usr/bin/env python3
"""HF PEFT loads the adapter `tiller finetune --peft-out` wrote and gives tiller's logits.

Usage: check_peft_interop.py MODEL_DIR PEFT_DIR TOKENS LOGITS.npy
  TOKENS: comma-separated ids; LOGITS.npy: `tiller logits --profile PEFT_DIR --tokens TOKENS --all`.
Tolerance: the parity fixtures' F32 rule, |tiller - HF| <= 1e-4 (1 + |HF|) for every logit."""
import json
import sys

import numpy as np
import torch
import transformers
from peft import PeftModel


def main(model_dir, peft_dir, tokens, logits_path):
    cfg = json.load(open(f"{model_dir}/config.json"))
    cls = getattr(transformers, cfg["architectures"][0])
    base = cls.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, peft_dir).eval()
    ids = torch.tensor([[int(t) for t in tokens.split(",")]])
    with torch.no_grad():
        ref = model(ids).logits[0].numpy()
    got = np.load(logits_path)
    ratio = float(np.max(np.abs(got - ref) / (1e-4 * (1 + np.abs(ref)))))
    with model.disable_adapter(), torch.no_grad():
        plain = model(ids).logits[0].numpy()
    moved = float(np.max(np.abs(ref - plain)))
    print(f"PEFT vs tiller: max |diff| / tolerance = {ratio:.4f}; the adapter moves the logits by up to {moved:.4f}")
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert moved > 1e-2, "the adapter barely changes the logits: the check would not see a wrong load"
    assert ratio <= 1.0, "tiller's logits with the profile differ from HF PEFT's"


if __name__ == "__main__":
    main(*sys.argv[1:])
