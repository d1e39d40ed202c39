// Tokenizers from GGUF metadata equal the tokenizer files they were converted from: the HF
// tokenizer.json (Llama-3, Qwen2, SmolLM2: byte-level BPE with llama.cpp's pre-tokenizer names)
// and sentencepiece tokenizer.model (Llama-2, Mistral v0.1), stored as llama.cpp's converter
// stores them, on the multilingual tokenizer corpus.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/json_file.h"
#include "engine/tokenizer/tokenizer.h"
#include "gguf_writer.h"
#include "test_util.h"

#if TILLER_HAVE_TOKENIZERS
#include <sentencepiece_processor.h>
#endif

using namespace tiller;
namespace fs = std::filesystem;

namespace {

fs::path tokenizers_dir() { return test::shared_dir() / "data" / "tokenizers"; }

std::string case_input(const json& c) {
  if (!c.contains("hex")) return c["text"].get<std::string>();
  const std::string hex = c["hex"].get<std::string>();
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += char(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

// A vocabulary-only GGUF (no tensors), as convert_hf_to_gguf.py's vocabulary writer fills it.
struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;  // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<float> scores;
  std::vector<std::string> merges;
};

fs::path write_vocab(const Vocab& v, const std::string& model, const std::string& pre, std::optional<uint32_t> bos,
                     std::optional<uint32_t> eos, bool add_bos, const std::string& tag) {
  test::GgufWriter w;
  w.str("general.architecture", "llama");
  w.str("tokenizer.ggml.model", model);
  if (!pre.empty()) w.str("tokenizer.ggml.pre", pre);
  w.strs("tokenizer.ggml.tokens", v.tokens);
  w.array("tokenizer.ggml.token_type", test::GgufWriter::I32, v.types);
  if (!v.scores.empty()) w.array("tokenizer.ggml.scores", test::GgufWriter::F32, v.scores);
  if (!v.merges.empty()) w.strs("tokenizer.ggml.merges", v.merges);
  if (bos) w.u32("tokenizer.ggml.bos_token_id", *bos);
  if (eos) w.u32("tokenizer.ggml.eos_token_id", *eos);
  w.boolean("tokenizer.ggml.add_bos_token", add_bos);
  const fs::path path = fs::temp_directory_path() / ("tiller-vocab-" + tag + "-" + std::to_string(::getpid()) + ".gguf");
  w.write(path);
  return path;
}

// tokenizer.json -> GGUF vocabulary: the model's tokens, added tokens (special ones CONTROL), ids
// without a token padded as "[PAD<id>]" (UNUSED) up to `padded`.
Vocab vocab_from_tokenizer_json(const fs::path& file, size_t padded) {
  const json root = read_json_file(file);
  Vocab v;
  for (const auto& [text, id] : root["model"]["vocab"].items()) {
    const size_t i = id.get<size_t>();
    if (v.tokens.size() <= i) v.tokens.resize(i + 1), v.types.resize(i + 1, 0);
    v.tokens[i] = text, v.types[i] = 1;
  }
  for (const json& a : root["added_tokens"]) {
    const size_t i = a["id"].get<size_t>();
    if (v.tokens.size() <= i) v.tokens.resize(i + 1), v.types.resize(i + 1, 0);
    v.tokens[i] = a["content"].get<std::string>();
    v.types[i] = a["special"].get<bool>() ? 3 : 4;
  }
  if (v.tokens.size() < padded) v.tokens.resize(padded), v.types.resize(padded, 0);
  for (size_t i = 0; i < v.tokens.size(); i++) {
    if (v.types[i] == 0) v.tokens[i] = "[PAD" + std::to_string(i) + "]", v.types[i] = 5;
  }
  for (const json& m : root["model"]["merges"])
    v.merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  return v;
}

void check_same(const Tokenizer& a, const Tokenizer& b, const std::string& name) {
  const json corpus = read_json_file(test::fixtures_dir() / "tokenizers" / "corpus.json");
  size_t n = 0;
  for (const json& c : corpus["cases"]) {
    const std::string input = case_input(c);
    INFO(name << ": " << c["name"].get<std::string>());
    for (bool special : {false, true}) {
      const auto ids = a.encode(input, {.add_special = true, .parse_special = special});
      CHECK(ids == b.encode(input, {.add_special = true, .parse_special = special}));
      CHECK(a.decode(ids, true) == b.decode(ids, true));
      CHECK(a.decode(ids, false) == b.decode(ids, false));
    }
    n++;
  }
  CHECK(n > 100);
}

}  // namespace

TEST_CASE("gguf tokenizer: byte-level BPE vocabularies equal their tokenizer.json (llama-bpe, qwen2, smollm)") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (the reference tokenizers)");
  struct Case {
    const char* dir;
    const char* pre;
    size_t padded;
    std::optional<uint32_t> bos, eos;
    bool add_bos;
  };
  const Case cases[] = {{"llama3", "llama-bpe", 0, 128000, 128009, true},
                        {"qwen2", "qwen2", 151936, std::nullopt, 151645, false},
                        {"smollm2", "smollm", 0, 1, 2, false}};
  for (const Case& c : cases) {
    CAPTURE(c.dir);
    const fs::path folder = tokenizers_dir() / c.dir;
    const fs::path file =
        write_vocab(vocab_from_tokenizer_json(folder / "tokenizer.json", c.padded), "gpt2", c.pre, c.bos, c.eos, c.add_bos, c.dir);
    const auto from_gguf = load_tokenizer(file);
    const auto from_json = load_tokenizer(folder);
    fs::remove(file);
    CHECK(from_gguf->special().add_bos == from_json->special().add_bos);
    check_same(*from_gguf, *from_json, c.dir);
  }
}

TEST_CASE("gguf tokenizer: sentencepiece vocabularies equal their tokenizer.model (Llama-2, Mistral v0.1)") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (the reference tokenizers)");
#if TILLER_HAVE_TOKENIZERS
  for (const char* name : {"llama2-spm", "mistral-v0.1-spm"}) {
    CAPTURE(name);
    const fs::path folder = tokenizers_dir() / name;
    sentencepiece::SentencePieceProcessor sp;
    REQUIRE(sp.Load((folder / "tokenizer.model").string()).ok());
    Vocab v;
    for (int i = 0; i < sp.GetPieceSize(); i++) {
      v.tokens.push_back(sp.IdToPiece(i));
      v.scores.push_back(sp.GetScore(i));
      v.types.push_back(sp.IsControl(i) ? 3 : sp.IsUnknown(i) ? 2 : sp.IsUnused(i) ? 5 : sp.IsByte(i) ? 6 : 1);
    }
    const fs::path file = write_vocab(v, "llama", "", uint32_t(sp.bos_id()), uint32_t(sp.eos_id()), true, name);
    const auto from_gguf = load_tokenizer(file);
    const auto from_model = load_tokenizer(folder);
    fs::remove(file);
    CHECK(from_gguf->special().bos == from_model->special().bos);
    CHECK(from_gguf->special().add_bos == from_model->special().add_bos);
    check_same(*from_gguf, *from_model, name);
  }
#endif
}

TEST_CASE("gguf tokenizer: an unknown pre-tokenizer or tokenizer model is refused by name") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  Vocab v{{"a", "b", "ab"}, {1, 1, 1}, {}, {"a b"}};
  const fs::path f1 = write_vocab(v, "gpt2", "made-up", std::nullopt, std::nullopt, false, "pre");
  CHECK_THROWS_WITH_AS(load_tokenizer(f1), doctest::Contains("pre-tokenizer \"made-up\" (tokenizer.ggml.pre) is not supported"),
                       Error);
  fs::remove(f1);
  const fs::path f2 = write_vocab(v, "bert", "", std::nullopt, std::nullopt, false, "model");
  CHECK_THROWS_WITH_AS(load_tokenizer(f2), doctest::Contains("tokenizer model \"bert\""), Error);
  fs::remove(f2);
  const fs::path f3 = write_vocab(v, "gpt2", "gpt-2", std::nullopt, std::nullopt, false, "ok");
  CHECK(load_tokenizer(f3)->encode("ab", {}) == std::vector<int32_t>{2});
  fs::remove(f3);
}
