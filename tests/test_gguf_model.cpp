// GGUF models end to end: the HF fixture models converted here as llama.cpp's converter converts
// them (names, q/k row interleaving, rope_freqs for llama3 scaling, metadata keys) give HF's own
// logits; and SmolLM2-135M-Instruct from PyPI (a file llama.cpp wrote) gives, loaded by tiller,
// the logits and greedy answers HF transformers gives loading the same file.
#include <cmath>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <numbers>
#include <optional>
#include <vector>

#include "engine/chat/chat_prompt.h"
#include "engine/chat/chat_template.h"
#include "engine/gguf.h"
#include "engine/json_file.h"
#include "engine/npy.h"
#include "engine/safetensors.h"
#include "engine/tokenizer/tokenizer_config.h"
#include "cli_run.h"
#include "gguf_writer.h"
#include "models/generate.h"
#include "models/gguf_model.h"
#include "models/weight_specs.h"
#include "steering/model_fingerprint.h"
#include "test_backends.h"
#include "test_util.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {

// llama.cpp's permute: each head's rows [2, d/2] -> [d/2, 2] (HF row j·d/2 + i -> 2i + j).
std::vector<uint8_t> interleave_rows(const uint8_t* src, int64_t rows, size_t row_bytes, int64_t heads) {
  std::vector<uint8_t> out(size_t(rows) * row_bytes);
  const int64_t d = rows / heads, half = d / 2;
  for (int64_t h = 0; h < heads; h++)
    for (int64_t i = 0; i < half; i++)
      for (int64_t j = 0; j < 2; j++)
        std::memcpy(out.data() + size_t(h * d + 2 * i + j) * row_bytes, src + size_t(h * d + j * half + i) * row_bytes,
                    row_bytes);
  return out;
}

// An HF fixture folder as llama.cpp's convert_hf_to_gguf.py writes it; matrices as F32 or Q8_0.
void convert_fixture(const fs::path& dir, const fs::path& out, bool q8_0) {
  const json cfg = read_json_file(dir / "config.json");
  const ModelConfig c = load_model_config(dir);
  const auto st = SafetensorsFile::open(dir / "model.safetensors");
  const bool qwen = c.architecture == Architecture::Qwen2;
  const std::string a = qwen ? "qwen2" : "llama";
  test::GgufWriter w;
  w.str("general.architecture", a);
  w.u32(a + ".block_count", uint32_t(c.n_layers));
  w.u32(a + ".context_length", uint32_t(c.max_position_embeddings));
  w.u32(a + ".embedding_length", uint32_t(c.hidden_size));
  w.u32(a + ".feed_forward_length", uint32_t(c.intermediate_size));
  w.u32(a + ".attention.head_count", uint32_t(c.n_heads));
  w.u32(a + ".attention.head_count_kv", uint32_t(c.n_kv_heads));
  w.f32(a + ".rope.freq_base", float(c.rope.theta));
  w.f32(a + ".attention.layer_norm_rms_epsilon", float(c.rms_norm_eps));
  w.u32(a + ".rope.dimension_count", uint32_t(c.head_dim));
  if (cfg.contains("head_dim")) {
    w.u32(a + ".attention.key_length", uint32_t(c.head_dim));
    w.u32(a + ".attention.value_length", uint32_t(c.head_dim));
  }
  if (c.rope.type == RopeConfig::Type::Linear) {
    w.str(a + ".rope.scaling.type", "linear");
    w.f32(a + ".rope.scaling.factor", float(c.rope.factor));
  }
  if (c.rope.type == RopeConfig::Type::Llama3) {  // generate_extra_tensors: rope_freqs, in F32
    std::vector<float> factors;
    const float low_wl = float(c.rope.original_max_position) / float(c.rope.low_freq_factor);
    const float high_wl = float(c.rope.original_max_position) / float(c.rope.high_freq_factor);
    for (int64_t i = 0; i < c.head_dim / 2; i++) {
      const float freq = 1.0f / std::pow(float(c.rope.theta), float(2 * i) / float(c.head_dim));
      const float wl = float(2 * std::numbers::pi) / freq;
      if (wl < high_wl) factors.push_back(1.0f);
      else if (wl > low_wl) factors.push_back(float(c.rope.factor));
      else {
        const float smooth = (float(c.rope.original_max_position) / wl - float(c.rope.low_freq_factor)) /
                             float(c.rope.high_freq_factor - c.rope.low_freq_factor);
        factors.push_back(1.0f / ((1 - smooth) / float(c.rope.factor) + smooth));
      }
    }
    w.tensor_f32("rope_freqs.weight", {c.head_dim / 2}, factors);
  }
  // A window on some layers: the per-layer pattern; on all: the window alone.
  int64_t window = 0, windowed = 0;
  for (int64_t win : c.sliding_window) window = std::max(window, win), windowed += win > 0;
  if (window > 0) {
    w.u32(a + ".attention.sliding_window", uint32_t(window));
    if (windowed < c.n_layers) {
      std::vector<uint8_t> pattern;
      for (int64_t win : c.sliding_window) pattern.push_back(win > 0);
      w.array(a + ".attention.sliding_window_pattern", test::GgufWriter::Bool, pattern);
    }
  }
  for (const WeightSpec& spec : weight_specs(c)) {
    const Tensor t = st->view(spec.name);
    std::vector<float> f(size_t(t.numel()));
    to_f32(t.dtype, t.data, f.data(), f.size());
    const bool matrix = !spec.is_vector;
    std::vector<uint8_t> bytes;
    uint32_t type = 0;
    if (matrix && q8_0) {
      bytes = test::quantize_q8_0(f.data(), t.numel());
      type = 8;
    } else {
      bytes.resize(f.size() * 4);
      std::memcpy(bytes.data(), f.data(), bytes.size());
    }
    const bool q = spec.name.find("q_proj") != std::string::npos, k = spec.name.find("k_proj") != std::string::npos;
    if (!qwen && (q || k))
      bytes = interleave_rows(bytes.data(), t.shape[0], bytes.size() / size_t(t.shape[0]), q ? c.n_heads : c.n_kv_heads);
    std::vector<int64_t> shape(t.shape.begin(), t.shape.begin() + t.rank);
    w.tensor(gguf_tensor_name(spec.name), type, shape, std::move(bytes));
  }
  w.write(out);
}

struct Reference {
  std::shared_ptr<SafetensorsFile> file;
  json meta;
  explicit Reference(const fs::path& dir, const std::string& stem)
      : file(SafetensorsFile::open(dir / (stem + ".safetensors"))), meta(read_json_file(dir / (stem + ".json"))) {}
  std::vector<int32_t> ids(const std::string& name) const {
    const Tensor t = file->view(name);
    return {t.ptr<int32_t>(), t.ptr<int32_t>() + t.numel()};
  }
  std::vector<float> floats(const std::string& name) const {
    const Tensor t = file->view(name);
    return {t.ptr<float>(), t.ptr<float>() + t.numel()};
  }
};

std::vector<float> logits(Model& model, const std::vector<int32_t>& prompt, bool all,
                          std::optional<DType> kv_dtype = std::nullopt) {
  KvCacheOptions o = model.kv_cache_options(int64_t(prompt.size()));
  if (kv_dtype) o.dtype = *kv_dtype;
  KvCache kv(model.backend(), o);
  const SeqId seq = kv.create();
  Batch batch;
  for (size_t i = 0; i < prompt.size(); i++) batch.add(prompt[i], seq, int32_t(i), all || i + 1 == prompt.size());
  return test::download_f32(model.backend(), model.forward(batch, kv));
}

// Worst |Δ| / (1e-4 · (1 + |ref|)), the F32 parity measure of test_parity.cpp; must be <= 1.
double worst_f32_ratio(const std::vector<float>& got, const std::vector<float>& ref) {
  REQUIRE(got.size() == ref.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    worst = std::max(worst, std::abs(double(got[i]) - ref[i]) / (1e-4 * (1 + std::abs(double(ref[i])))));
  }
  return worst;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("tiller-gguf-model-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

const char* kFixtures[] = {"llama_gqa", "llama3_rope", "llama_linear_rope", "mistral_swa", "qwen2_bias_tied", "qwen2_swa"};

}  // namespace

TEST_CASE("gguf model: HF fixtures converted as llama.cpp converts them give HF's logits and greedy tokens") {
  TempDir tmp;
  for (const std::string name : kFixtures) {
    CAPTURE(name);
    const fs::path dir = test::fixtures_dir() / "models" / name, file = tmp.path / (name + ".gguf");
    convert_fixture(dir, file, false);
    const ModelConfig folder = load_model_config(dir), gguf = load_model_config(file);
    CHECK(gguf.sliding_window == folder.sliding_window);
    CHECK(gguf.tie_word_embeddings == folder.tie_word_embeddings);
    CHECK(gguf.qkv_bias == folder.qkv_bias);
    const Reference ref(dir, "reference");
    for (const test::BackendCase& bc : test::model_backends()) {
      CAPTURE(bc.name);
      auto backend = bc.make();
      auto model = Model::load(file, *backend, {.weight_dtype = std::nullopt, .quiet = true});
      for (int p = 0; p < int(ref.meta["prompts"].size()); p++) {
        CAPTURE(p);
        const auto prompt = ref.ids("prompt." + std::to_string(p) + ".tokens");
        CHECK(worst_f32_ratio(logits(*model, prompt, true), ref.floats("prompt." + std::to_string(p) + ".logits")) <= 1.0);
      }
      GenerateOptions opt;
      opt.max_new_tokens = 32;
      CHECK(generate(*model, ref.ids("greedy.prompt"), opt).tokens == ref.ids("greedy.tokens"));
    }
  }
}

TEST_CASE("gguf model: Q8_0 weights run quantized close to the same file dequantized to F32") {
  TempDir tmp;
  for (const std::string name : {"llama_gqa", "qwen2_bias_tied"}) {
    CAPTURE(name);
    const fs::path file = tmp.path / (name + ".q8_0.gguf");
    convert_fixture(test::fixtures_dir() / "models" / name, file, true);
    CpuBackend backend(2);
    auto quantized = Model::load(file, backend, {.weight_dtype = std::nullopt, .quiet = true});
    auto exact = Model::load(file, backend, {.weight_dtype = DType::F32, .quiet = true});
    CHECK(quantized->weight_dtype() == DType::Q8_0);
    CHECK(exact->weight_dtype() == DType::F32);
    const Reference ref(test::fixtures_dir() / "models" / name, "reference");
    // 40 rows run the GEMM on exactly dequantized panels: the numbers F32 weights give, up to the
    // summation order (on AVX-512 F32 weights take the GEMV at 40 rows). F32 caches on both
    // sides: a BF16 cache would round two nearly equal keys apart now and then and turn an order
    // difference of 1e-7 into a BF16 ulp (measured: 6e-4 on logits up to 17.5).
    std::vector<int32_t> prompt = ref.ids("prompt.0.tokens");
    const size_t n0 = prompt.size();
    while (prompt.size() < 40) prompt.push_back(prompt[prompt.size() % n0]);
    const auto q = logits(*quantized, prompt, true, DType::F32), e = logits(*exact, prompt, true, DType::F32);
    double scale = 0;
    for (float v : e) scale = std::max(scale, double(std::fabs(v)));
    CAPTURE(scale);
    CHECK(max_abs_diff(q, e) <= 1e-6 * (1 + scale));  // measured: 0 on AVX2 (one kernel), 7.6e-6 at 17.5
    // A few rows run the int8 GEMV: x rounded to 8 bits per 32 values (measured: 1.3e-4).
    const std::vector<int32_t> few(prompt.begin(), prompt.begin() + 5);
    const auto q1 = logits(*quantized, few, true), e1 = logits(*exact, few, true, DType::BF16);
    double num = 0, den = 0;
    for (size_t i = 0; i < q1.size(); i++) num += (q1[i] - e1[i]) * (q1[i] - e1[i]), den += e1[i] * e1[i];
    CAPTURE(num / den);
    CHECK(num / den < 1e-3);
    CHECK(num / den > 0);  // the GEMV really ran quantized
  }
}

TEST_CASE("gguf model: --quantized-prefill int8 runs a 40-token prompt on 8-bit activations, close to exact") {
  TempDir tmp;
  const fs::path file = tmp.path / "llama_gqa.q8_0.gguf";
  convert_fixture(test::fixtures_dir() / "models" / "llama_gqa", file, true);
  const Reference ref(test::fixtures_dir() / "models" / "llama_gqa", "reference");
  std::vector<int32_t> prompt = ref.ids("prompt.0.tokens");
  const size_t n0 = prompt.size();
  while (prompt.size() < 40) prompt.push_back(prompt[prompt.size() % n0]);
  std::string tokens;
  for (int32_t t : prompt) tokens += (tokens.empty() ? "" : ",") + std::to_string(t);
  auto run = [&](const std::string& mode) {
    const fs::path out = tmp.path / (mode + ".npy");
    const test::CliRun r = test::run_tiller_cli("logits -t 2 --model " + file.string() + " --tokens " + tokens +
                                                " --all --quantized-prefill " + mode + " --out " + out.string());
    REQUIRE(r.status == 0);
    return read_npy(out).data;
  };
  const std::vector<float> exact = run("exact"), int8 = run("int8");
  REQUIRE(exact.size() == int8.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < exact.size(); i++) num += (int8[i] - exact[i]) * (int8[i] - exact[i]), den += exact[i] * exact[i];
  CAPTURE(num / den);
  CHECK(num / den < 1e-3);  // x rounded to 8 bits per 32 values, as the few-row check above
  CHECK(num / den > 0);     // the int8 GEMV really ran at 40 rows
}

// --- SmolLM2-135M-Instruct (Q4_1, from PyPI) ---------------------------------------------------

namespace {

// The largest |Δlogit| the Q4_1 model, kept quantized, may show against HF's F32 logits after the
// three prompts (measured: 0.32; the int8 activations of decode steps and the BF16 KV cache are
// the difference), and so the smallest top-1/top-2 gap of HF's greedy path that may flip a token:
// 2 · kQuantizedLogitBound.
constexpr double kQuantizedLogitBound = 0.6;

struct SmolLm2 {
  fs::path gguf = test::smollm2_gguf();
  Reference ref{test::fixtures_dir() / "gguf", "smollm2_reference"};
};

}  // namespace

TEST_CASE("gguf model: SmolLM2 dequantized to F32 gives HF's logits and greedy answers") {
  const SmolLm2 s;
  TILLER_SKIP_UNLESS(!s.gguf.empty(), test::smollm2_skip_reason());
  CHECK(s.ref.meta["gguf_sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
  CpuBackend backend(2);
  auto model = Model::load(s.gguf, backend, {.weight_dtype = DType::F32, .quiet = true});
  for (int i = 0; i < 3; i++) {
    CAPTURE(i);
    const std::string p = "prompt." + std::to_string(i);
    const auto prompt = s.ref.ids(p + ".ids");
    CHECK(worst_f32_ratio(logits(*model, prompt, false), s.ref.floats(p + ".logits")) <= 1.0);
    GenerateOptions opt;
    opt.max_new_tokens = 64;
    opt.stop_ids = model->config().eos_token_ids;
    CHECK(generate(*model, prompt, opt).tokens == s.ref.ids(p + ".greedy"));
  }
}

TEST_CASE("gguf model: SmolLM2 kept in Q4_1 gives HF's greedy answers, or differs only where HF's margin is small") {
  const SmolLm2 s;
  TILLER_SKIP_UNLESS(!s.gguf.empty(), test::smollm2_skip_reason());
  CpuBackend backend(2);
  auto model = Model::load(s.gguf, backend, {.weight_dtype = std::nullopt, .quiet = true});
  CHECK(model->weight_dtype() == DType::Q4_1);
  CHECK(model->weights().embed.dtype == DType::Q8_0);
  for (int i = 0; i < 3; i++) {
    CAPTURE(i);
    const std::string p = "prompt." + std::to_string(i);
    const auto prompt = s.ref.ids(p + ".ids");
    const double err = max_abs_diff(logits(*model, prompt, false), s.ref.floats(p + ".logits"));
    CAPTURE(err);
    CHECK(err <= kQuantizedLogitBound);
    GenerateOptions opt;
    opt.max_new_tokens = 64;
    opt.stop_ids = model->config().eos_token_ids;
    const auto got = generate(*model, prompt, opt).tokens, want = s.ref.ids(p + ".greedy");
    const auto gaps = s.ref.floats(p + ".gaps");
    size_t first = 0;
    while (first < got.size() && first < want.size() && got[first] == want[first]) first++;
    if (first < std::min(got.size(), want.size())) {
      CAPTURE(first);
      CAPTURE(gaps[first]);
      MESSAGE("Q4_1 answer " << i << " leaves HF's at token " << first << ", where HF's top-1/top-2 gap is " << gaps[first]);
      CHECK(gaps[first] < 2 * kQuantizedLogitBound);
    } else {
      CHECK(got == want);
    }
  }
}

TEST_CASE("gguf model: SmolLM2's tokenizer and chat template from the GGUF match tokenizer.json and HF's rendering") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const SmolLm2 s;
  TILLER_SKIP_UNLESS(!s.gguf.empty(), test::smollm2_skip_reason());
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (the SmolLM2 tokenizer.json)");
  const auto from_gguf = load_tokenizer(s.gguf);
  const auto from_json = load_tokenizer(test::shared_dir() / "data" / "tokenizers" / "smollm2");
  CHECK(from_gguf->vocab_size() == from_json->vocab_size());
  const json corpus = read_json_file(test::fixtures_dir() / "tokenizers" / "corpus.json");
  size_t n = 0;
  for (const json& c : corpus["cases"]) {
    if (!c.contains("text")) continue;
    const std::string text = c["text"].get<std::string>();
    CAPTURE(text);
    for (bool special : {false, true}) {
      const auto a = from_gguf->encode(text, {.add_special = true, .parse_special = special});
      CHECK(a == from_json->encode(text, {.add_special = true, .parse_special = special}));
      CHECK(from_gguf->decode(a, false) == from_json->decode(a, false));
    }
    n++;
  }
  CHECK(n > 100);

  const TokenizerConfig cfg = read_tokenizer_config(s.gguf);
  const ChatTemplate tmpl = ChatTemplate::select(cfg, "auto", from_gguf.get());
  ChatRenderOptions opt = chat_options_for(cfg);
  opt.add_generation_prompt = true;
  for (int i = 0; i < 3; i++) {
    CAPTURE(i);
    const json& c = s.ref.meta["cases"][size_t(i)];
    const auto messages = nlohmann::ordered_json::parse(c["messages"].dump());
    CHECK(tmpl.render(messages, opt) == c["rendered"].get<std::string>());
    CHECK(encode_chat_prompt(tmpl, *from_gguf, messages, opt) == s.ref.ids("prompt." + std::to_string(i) + ".ids"));
  }
}

TEST_CASE("gguf model: the fingerprint covers quantized bytes, so a profile made on F32 weights is refused on Q8_0") {
  TempDir tmp;
  const fs::path dir = test::fixtures_dir() / "models" / "llama_gqa";
  const fs::path f32 = tmp.path / "f32.gguf", q8 = tmp.path / "q8_0.gguf";
  convert_fixture(dir, f32, false);
  convert_fixture(dir, q8, true);
  CpuBackend backend(1);
  const LoadOptions quiet{.weight_dtype = std::nullopt, .quiet = true};
  const std::string folder = model_fingerprint(*Model::load(dir, backend, quiet));
  // The same weights in a GGUF file (rows reordered back) hash the same; the config half differs,
  // since GGUF stores rms_norm_eps as F32.
  const auto weights_half = [](const std::string& fp) { return fp.substr(fp.rfind('-')); };
  CHECK(weights_half(model_fingerprint(*Model::load(f32, backend, quiet))) == weights_half(folder));
  const std::string quantized = model_fingerprint(*Model::load(q8, backend, quiet));
  CHECK(quantized != folder);
  CHECK(model_fingerprint(*Model::load(q8, backend, quiet)) == quantized);
  // One byte in the last block of the output matrix (Q8_0, the end of the data) changes it.
  std::ifstream in(q8, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto file = GgufFile::open(q8);
  const GgufTensorInfo* head = file->find_tensor("output.weight");
  REQUIRE(head);
  REQUIRE(head->type_name == "Q8_0");
  bytes[head->offset + head->nbytes - 1] ^= 1;
  test::GgufWriter::write_bytes(tmp.path / "edited.gguf", bytes);
  CHECK(model_fingerprint(*Model::load(tmp.path / "edited.gguf", backend, quiet)) != quantized);
}
