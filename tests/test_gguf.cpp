// The GGUF reader and the block formats: dequantization bit for bit against the gguf Python
// package (tests/fixtures/gguf/quant_types.gguf, written by gguf's own writer), and broken files
// refused with a message that says what is wrong.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "gguf_writer.h"
#include "kernels/cpu/cpu_backend.h"
#include "models/model.h"
#include "test_util.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {

fs::path quant_fixture() { return test::fixtures_dir() / "gguf" / "quant_types.gguf"; }

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& tag)
      : path(fs::temp_directory_path() / ("tiller-gguf-" + tag + "-" + std::to_string(::getpid()) + ".gguf")) {}
  ~TempFile() { fs::remove(path); }
};

std::string open_error(const fs::path& p) {
  try {
    GgufFile::open(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string load_error(const fs::path& p) {
  CpuBackend backend(1);
  try {
    Model::load(p, backend);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A minimal llama GGUF (one layer, F32) that loads; tests break one thing at a time.
test::GgufWriter tiny_llama(const std::string& arch = "llama", int64_t vocab_tokens = 64) {
  test::GgufWriter w;
  const int64_t V = 64, D = 32, F = 64;
  w.str("general.architecture", arch);
  w.u32(arch + ".block_count", 1);
  w.u32(arch + ".context_length", 128);
  w.u32(arch + ".embedding_length", D);
  w.u32(arch + ".feed_forward_length", F);
  w.u32(arch + ".attention.head_count", 2);
  w.u32(arch + ".attention.head_count_kv", 1);
  w.f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < vocab_tokens; i++) tokens.push_back("t" + std::to_string(i));
  w.str("tokenizer.ggml.model", "gpt2");
  w.str("tokenizer.ggml.pre", "gpt-2");
  w.strs("tokenizer.ggml.tokens", tokens);
  w.strs("tokenizer.ggml.merges", {});
  auto mat = [&](const std::string& name, int64_t rows, int64_t cols) {
    std::vector<float> v(size_t(rows * cols));
    for (size_t i = 0; i < v.size(); i++) v[i] = float(int(i % 7) - 3) * 0.01f;
    w.tensor_f32(name, {rows, cols}, v);
  };
  auto vec = [&](const std::string& name, int64_t n) { w.tensor_f32(name, {n}, std::vector<float>(size_t(n), 1.0f)); };
  mat("token_embd.weight", V, D);
  vec("blk.0.attn_norm.weight", D);
  mat("blk.0.attn_q.weight", D, D);
  mat("blk.0.attn_k.weight", D / 2, D);
  mat("blk.0.attn_v.weight", D / 2, D);
  mat("blk.0.attn_output.weight", D, D);
  vec("blk.0.ffn_norm.weight", D);
  mat("blk.0.ffn_gate.weight", F, D);
  mat("blk.0.ffn_up.weight", F, D);
  mat("blk.0.ffn_down.weight", D, F);
  vec("output_norm.weight", D);
  return w;
}

}  // namespace

TEST_CASE("gguf: every block type dequantizes bit for bit as gguf.quants.dequantize does") {
  const auto file = GgufFile::open(quant_fixture());
  CHECK(file->version() == 3);
  CHECK(file->get_string("general.architecture") == "tiller-test");
  int checked = 0;
  for (const char* name : {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16"}) {
    CAPTURE(name);
    const GgufTensorInfo* raw = file->find_tensor(std::string(name) + ".raw");
    const GgufTensorInfo* want = file->find_tensor(std::string(name) + ".expected");
    REQUIRE(raw);
    REQUIRE(want);
    CHECK(raw->type_name == name);
    REQUIRE(raw->shape == want->shape);
    const Tensor r = file->view(*raw), e = file->view(*want);
    CHECK(r.nbytes() == raw->nbytes);
    // Odd numbers of blocks and rows: each row on its own, then the whole tensor at once.
    std::vector<float> got(size_t(r.numel()));
    for (int64_t row = 0; row < r.shape[0]; row++)
      to_f32(r.dtype, r.rows(row, 1).data, got.data() + row * r.shape[1], size_t(r.shape[1]));
    CHECK(std::memcmp(got.data(), e.data, got.size() * 4) == 0);
    std::vector<float> all(got.size());
    convert(r.dtype, r.data, DType::F32, all.data(), r.numel());
    CHECK(std::memcmp(all.data(), e.data, all.size() * 4) == 0);
    checked++;
  }
  CHECK(checked == 12);
}

TEST_CASE("gguf: a partial block is refused by the dequantizer") {
  const auto file = GgufFile::open(quant_fixture());
  const Tensor r = file->view(*file->find_tensor("Q4_K.raw"));
  std::vector<float> out(300);
  CHECK_THROWS_WITH_AS(to_f32(r.dtype, r.data, out.data(), 300), doctest::Contains("not whole blocks of 256"), Error);
}

TEST_CASE("gguf: a truncated file is refused at every cut, never read past its end") {
  std::ifstream in(quant_fixture(), std::ios::binary);
  const std::vector<uint8_t> full((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(full.size() > 1000);
  TempFile t("cut");
  int refused = 0;
  for (size_t cut = 0; cut < full.size(); cut += cut < 2048 ? 7 : 997) {
    CAPTURE(cut);
    test::GgufWriter::write_bytes(t.path, std::vector<uint8_t>(full.begin(), full.begin() + long(cut)));
    const std::string e = open_error(t.path);
    CHECK(e.find(t.path.string()) != std::string::npos);
    CHECK((e.find("truncated") != std::string::npos || e.find("remain") != std::string::npos));
    refused++;
  }
  CHECK(refused > 300);
}

TEST_CASE("gguf: a tensor whose data lies past the end of the file is refused") {
  test::GgufWriter w = tiny_llama();
  w.tensor("extra.weight", 0, {4, 32}, std::vector<uint8_t>(512), uint64_t(1) << 40);
  TempFile t("offset");
  w.write(t.path);
  const std::string e = open_error(t.path);
  CHECK(e.find("tensor \"extra.weight\"") != std::string::npos);
  CHECK(e.find("truncated") != std::string::npos);
}

TEST_CASE("gguf: an unknown quantization type is refused with its id; a known one tiller lacks, by name") {
  TempFile t("type");
  {
    test::GgufWriter w = tiny_llama();
    w.tensor("odd.weight", 99, {2, 32}, std::vector<uint8_t>(64));
    w.write(t.path);
    CHECK(open_error(t.path).find("\"odd.weight\" has ggml type 99, which tiller does not know") != std::string::npos);
  }
  {
    test::GgufWriter w = tiny_llama();
    w.tensor("blk.0.attn_q.weight", 16 /*IQ2_XXS*/, {32, 256}, std::vector<uint8_t>(32 * 66));
    w.write(t.path);  // the same name twice: the reader refuses duplicates first
    CHECK(open_error(t.path).find("appears twice") != std::string::npos);
  }
}

TEST_CASE("gguf: a tensor in a type tiller cannot run is validated, then refused by name when used") {
  TempFile t("iq2");
  test::GgufWriter m = tiny_llama();
  m.tensor("blk.0.ffn_up.weight_iq2", 16, {64, 256}, std::vector<uint8_t>(64 * 66));
  m.write(t.path);
  const auto f = GgufFile::open(t.path);
  const GgufTensorInfo* info = f->find_tensor("blk.0.ffn_up.weight_iq2");
  REQUIRE(info);
  CHECK(info->type_name == "IQ2_XXS");
  CHECK(!info->dtype);
  CHECK_THROWS_WITH_AS(f->view(*info), doctest::Contains("has type IQ2_XXS, which tiller does not run"), Error);
}

TEST_CASE("gguf: unsupported architectures and mismatched vocabularies are clear errors") {
  TempFile t("arch");
  tiny_llama().write(t.path);
  CHECK(load_error(t.path) == "(no error)");
  tiny_llama("gemma").write(t.path);
  CHECK(load_error(t.path).find("architecture \"gemma\" is not supported. tiller runs GGUF files of the llama") !=
        std::string::npos);
  tiny_llama("llama", 60).write(t.path);
  const std::string e = load_error(t.path);
  CHECK(e.find("tokenizer.ggml.tokens) has 60 tokens but the embedding token_embd.weight has 64 rows") != std::string::npos);
}

TEST_CASE("gguf: bad headers and metadata are refused") {
  TempFile t("header");
  auto expect = [&](std::vector<uint8_t> bytes, const char* needle) {
    test::GgufWriter::write_bytes(t.path, bytes);
    const std::string e = open_error(t.path);
    CAPTURE(e);
    CHECK(e.find(needle) != std::string::npos);
  };
  std::vector<uint8_t> good = tiny_llama().bytes();
  std::vector<uint8_t> bad = good;
  bad[0] = 'X';
  expect(bad, "not a GGUF file");
  bad = good;
  bad[4] = 1;
  expect(bad, "GGUF version 1");
  bad = good;
  bad[4] = 0, bad[7] = 3;  // byte-swapped version
  expect(bad, "big-endian");
  bad = good;
  std::memset(bad.data() + 16, 0xff, 8);  // kv count
  expect(bad, "more than");
  {
    test::GgufWriter w = tiny_llama();
    w.raw_kv("weird", 77, {});
    expect(w.bytes(), "value type 77");
  }
  {
    test::GgufWriter w = tiny_llama();
    w.u32("general.alignment", 48);
    expect(w.bytes(), "general.alignment 48 is not a power of two");
  }
  {
    test::GgufWriter w = tiny_llama();
    w.u32("llama.block_count", 2);
    expect(w.bytes(), "metadata key \"llama.block_count\" appears twice");
  }
  {
    test::GgufWriter w = tiny_llama();
    w.tensor("short_rows", 8 /*Q8_0*/, {2, 40}, std::vector<uint8_t>(64));
    expect(w.bytes(), "rows of 40 values, not a multiple of the Q8_0 block of 32");
  }
  {
    test::GgufWriter w = tiny_llama();
    w.tensor("a", 0, {4}, std::vector<uint8_t>(16), 0);  // overlaps token_embd.weight at offset 0
    expect(w.bytes(), "overlap");
  }
}
