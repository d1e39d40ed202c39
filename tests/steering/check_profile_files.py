#!/usr/bin/env python3
# Opens what `tiller steer soteria` and `tiller steer merge` write with Python's safetensors and
# numpy only, and checks them against the base and harmful fixture models and HF's steered
# reference (tests/fixtures/steering). Usage: check_profile_files.py PROFILE MERGED_DIR
import json
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
SCALE = np.float32(1.35)


def main(profile: str, merged: str) -> None:
    with safe_open(profile, "np") as f:
        manifest = json.loads(f.metadata()["tiller_profile"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert manifest["format_version"] == 1 and manifest["method"] == "soteria", manifest
    assert manifest["base_model"]["fingerprint"].startswith("tiller-fp1:")
    heads = json.loads((FIX / "steering" / "heads.json").read_text())
    assert sorted(map(tuple, manifest["heads"])) == sorted(map(tuple, heads))
    base = load_file(str(FIX / "models" / "llama_gqa" / "model.safetensors"))
    ft = load_file(str(FIX / "steering" / "llama_gqa_harmful" / "model.safetensors"))
    d = 16
    for layer in range(4):
        name = f"model.layers.{layer}.self_attn.o_proj.weight"
        blocks = tensors[name + ".delta_column_blocks"]
        cols = tensors[name + ".delta_columns"]
        assert blocks.dtype == np.int32 and cols.dtype == np.float32
        assert sorted(blocks.tolist()) == sorted(h for l, h in heads if l == layer)
        diff = (ft[name] - base[name]).astype(np.float32)
        want = np.concatenate([-(SCALE * diff[:, h * d:(h + 1) * d]) for h in blocks], axis=1)
        assert np.array_equal(cols, want), f"layer {layer}: max |diff| {np.abs(cols - want).max()}"
    merged_w = load_file(str(Path(merged) / "model.safetensors"))
    ref = load_file(str(FIX / "steering" / "soteria.safetensors"))
    for name, w in base.items():
        want = ref[name] if "o_proj" in name else w
        assert np.array_equal(merged_w[name], want), name
    assert json.loads((Path(merged) / "config.json").read_text())["num_hidden_layers"] == 4
    print(f"python interop: profile ({len(tensors)} tensors, manifest ok) and merged folder ({len(merged_w)} tensors) ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
