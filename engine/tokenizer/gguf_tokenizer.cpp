// The tokenizer of a GGUF file, built from its tokenizer.ggml.* metadata through the tokenizer
// code tiller already has:
//   "llama" (sentencepiece BPE): a sentencepiece ModelProto made of the tokens, scores and types,
//     read by libsentencepiece as a tokenizer.model would be;
//   "gpt2" (byte-level BPE): the tokenizer.json the vocabulary, merges and the named
//     pre-tokenizer stand for (llama.cpp's names, mapped to the HF pre-tokenizer each one is
//     the translation of), read by the HF tokenizer.
#include <cstring>
#include <string>

#include "engine/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer/tokenizer_factories.h"

namespace tiller {
namespace {

// --- sentencepiece ------------------------------------------------------------------------------

// The protobuf wire format, just what a ModelProto needs.
struct ProtoWriter {
  std::string out;
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out += char(v | 0x80);
      v >>= 7;
    }
    out += char(v);
  }
  void tag(int field, int wire) { varint(uint64_t(field) << 3 | uint64_t(wire)); }
  void integer(int field, int64_t v) {
    tag(field, 0);
    varint(uint64_t(v));
  }
  void bytes(int field, std::string_view s) {
    tag(field, 2);
    varint(s.size());
    out += s;
  }
  void f32(int field, float v) {
    tag(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    out.append(b, 4);
  }
};

// sentencepiece's piece types are GGUF's token types (NORMAL 1, UNKNOWN 2, CONTROL 3,
// USER_DEFINED 4, UNUSED 5, BYTE 6).
std::string sentencepiece_model(const GgufFile& f, const GgufValue& tokens) {
  const std::string file = f.path().string();
  const GgufValue* scores = f.get_number_array("tokenizer.ggml.scores");
  const GgufValue* types = f.get_number_array("tokenizer.ggml.token_type");
  if (!scores || scores->count != tokens.count)
    fail(file, ": a sentencepiece vocabulary needs tokenizer.ggml.scores, one per token (", tokens.count, ")");
  ProtoWriter model;
  bool has_bytes = false;
  for (uint64_t i = 0; i < tokens.count; i++) {
    ProtoWriter piece;
    piece.bytes(1, tokens.strings[size_t(i)]);
    piece.f32(2, float(scores->number_at(i)));
    const int64_t type = types ? types->integer_at(i) : 1;
    if (type < 1 || type > 6) fail(file, ": tokenizer.ggml.token_type[", i, "] = ", type, " is not a token type (1..6)");
    if (type != 1) piece.integer(3, type);
    has_bytes = has_bytes || type == 6;
    model.bytes(1, piece.out);
  }
  auto id = [&](const char* key, int64_t fallback) {
    const auto v = f.get_uint(key);
    return v ? int64_t(*v) : fallback;
  };
  ProtoWriter trainer;
  trainer.integer(3, 2);  // model_type: BPE
  trainer.integer(35, has_bytes ? 1 : 0);  // byte_fallback
  trainer.integer(40, id("tokenizer.ggml.unknown_token_id", 0));
  trainer.integer(41, id("tokenizer.ggml.bos_token_id", 1));
  trainer.integer(42, id("tokenizer.ggml.eos_token_id", 2));
  trainer.integer(43, id("tokenizer.ggml.padding_token_id", -1));
  model.bytes(2, trainer.out);
  ProtoWriter normalizer;
  normalizer.bytes(1, "identity");
  normalizer.integer(3, f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true) ? 1 : 0);
  normalizer.integer(4, f.get_bool("tokenizer.ggml.remove_extra_whitespaces").value_or(false) ? 1 : 0);
  model.bytes(3, normalizer.out);
  return model.out;
}

// --- byte-level BPE -----------------------------------------------------------------------------

json split(const char* regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}
json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
constexpr const char* kTekkenRegex =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?"
    "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The pre-tokenizer (and normalizer, ignore_merges) of the HF tokenizer.json llama.cpp's converter
// names `pre` after (llama-vocab.cpp lists the same regexes).
struct PreTokenizer {
  json normalizer;
  json pre_tokenizer;
  bool ignore_merges = false;
};

PreTokenizer named_pre_tokenizer(const std::string& pre, const std::string& file) {
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" || pre == "pixtral")
    return {nullptr, {{"type", "Sequence"}, {"pretokenizers", {split(kLlama3Regex), byte_level(false)}}}, true};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "megrez")
    return {{{"type", "NFC"}}, {{"type", "Sequence"}, {"pretokenizers", {split(kQwen2Regex), byte_level(false)}}}, false};
  if (pre == "tekken")
    return {nullptr, {{"type", "Sequence"}, {"pretokenizers", {split(kTekkenRegex), byte_level(false)}}}, true};
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell")
    return {nullptr,
            {{"type", "Sequence"},
             {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}},
            false};
  if (pre == "gpt-2" || pre == "gpt2" || pre == "phi-2" || pre == "mpt" || pre == "olmo")
    return {nullptr, byte_level(true), false};
  fail(file, ": pre-tokenizer \"", pre, "\" (tokenizer.ggml.pre) is not supported. tiller maps llama-bpe / llama3, "
       "qwen2, tekken, smollm / starcoder / refact / codeshell and gpt-2 / mpt / olmo to their HF pre-tokenizers.");
}

json tokenizer_json(const GgufFile& f, const GgufValue& tokens, const TokenizerConfig& cfg) {
  const std::string file = f.path().string();
  const GgufValue* merges = f.get_string_array("tokenizer.ggml.merges");
  if (!merges) fail(file, ": a gpt2 (BPE) vocabulary needs tokenizer.ggml.merges");
  const PreTokenizer pre = named_pre_tokenizer(f.get_string("tokenizer.ggml.pre").value_or("default"), file);

  json vocab = json::object();
  for (uint64_t i = 0; i < tokens.count; i++) {
    // A later duplicate would silently replace an id; llama.cpp's converter pads with unique
    // "[PAD<i>]" names, so duplicates mean a damaged file.
    auto [it, fresh] = vocab.emplace(std::string(tokens.strings[size_t(i)]), int64_t(i));
    if (!fresh) fail(file, ": token \"", tokens.strings[size_t(i)], "\" appears twice in tokenizer.ggml.tokens");
  }
  json merge_list = json::array();
  for (std::string_view m : merges->strings) merge_list.push_back(std::string(m));
  json added = json::array();
  for (const auto& [id, info] : cfg.added_tokens) {
    added.push_back({{"id", id}, {"content", info.content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", !info.special}, {"special", info.special}});
  }
  json single = json::array();
  json specials = json::object();
  auto special = [&](const std::string& text) {
    single.push_back({{"SpecialToken", {{"id", text}, {"type_id", 0}}}});
    specials[text] = {{"id", text}, {"ids", {vocab.at(text)}}, {"tokens", {text}}};
  };
  if (cfg.add_bos_token.value_or(false) && !cfg.bos_token.empty()) special(cfg.bos_token);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (cfg.add_eos_token.value_or(false) && !cfg.eos_token.empty()) special(cfg.eos_token);
  return {
      {"added_tokens", added},
      {"normalizer", pre.normalizer},
      {"pre_tokenizer", pre.pre_tokenizer},
      {"post_processor", {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}, {"ignore_merges", pre.ignore_merges},
        {"byte_fallback", false}, {"fuse_unk", false}}},
  };
}

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& f) {
  const std::string file = f.path().string();
  const auto model = f.get_string("tokenizer.ggml.model");
  const GgufValue* tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!model || !tokens || *model == "none" || *model == "no_vocab")
    fail(file, ": the file holds no vocabulary (tokenizer.ggml.model / tokenizer.ggml.tokens); pass token ids with --tokens");
  const TokenizerConfig cfg = gguf_tokenizer_config(f);
  if (*model == "llama") return make_sentencepiece_tokenizer(sentencepiece_model(f, *tokens), cfg, file);
  if (*model == "gpt2") return make_hf_tokenizer(tokenizer_json(f, *tokens, cfg), cfg, file);
  fail(file, ": tokenizer model \"", *model, "\" (tokenizer.ggml.model) is not supported; tiller reads llama "
       "(sentencepiece) and gpt2 (byte-level BPE) vocabularies.");
}

}  // namespace tiller
