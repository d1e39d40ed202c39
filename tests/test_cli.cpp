// The tiller binary end to end: help, errors and exit codes, and each subcommand's output.
#include <cmath>
#include <fstream>
#include <string>

#include "engine/chat/chat_template.h"
#include "engine/json_file.h"
#include "engine/npy.h"
#include "engine/safetensors.h"
#include "cli_run.h"
#include "test_util.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {

using test::run_shell;
using Run = test::CliRun;

Run run_tiller(const std::string& args) { return test::run_tiller_cli(args); }
fs::path temp_path(const std::string& name) { return test::scratch_path(name); }

std::string fixture(const std::string& name) { return (test::fixtures_dir() / "models" / name).string(); }

// The last line of the output that parses as a JSON object.
json last_json(const std::string& out) {
  size_t end = out.size();
  while (end > 0) {
    const size_t start = out.rfind('\n', end - 1);
    const std::string line = out.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1));
    if (!line.empty() && line[0] == '{') return json::parse(line);
    if (start == std::string::npos) break;
    end = start;
  }
  FAIL("no JSON object in output: " << out);
  return {};
}

}  // namespace

TEST_CASE("cli: --help everywhere, clear errors and exit codes") {
  const Run top = run_tiller("--help");
  CHECK(top.status == 0);
  for (const char* cmd : {"generate", "logits", "tokenize", "random-init"}) {
    CAPTURE(cmd);
    CHECK(top.out.find(cmd) != std::string::npos);
    const Run h = run_tiller(std::string(cmd) + " --help");
    CHECK(h.status == 0);
    CHECK(h.out.find("Usage: tiller " + std::string(cmd)) != std::string::npos);
  }
  Run r = run_tiller("frobnicate");
  CHECK(r.status == 2);
  CHECK(r.out.find("unknown command 'frobnicate'") != std::string::npos);
  r = run_tiller("generate --model " + fixture("llama_gqa") + " --tokens 1,2 --bogus");
  CHECK(r.status == 2);
  CHECK(r.out.find("unknown option '--bogus'") != std::string::npos);
  r = run_tiller("generate --model " + fixture("llama_gqa") + " --tokens 1,x");
  CHECK(r.status == 2);
  CHECK(r.out.find("found 'x'") != std::string::npos);
  r = run_tiller("generate --model " + fixture("llama_gqa") + " --tokens 1,2 --quantized-prefill fast");
  CHECK(r.status == 2);
  CHECK(r.out.find("--quantized-prefill expects exact or int8, found 'fast'") != std::string::npos);
  r = run_tiller("generate --model /nonexistent/model --tokens 1");
  CHECK(r.status == 1);
  CHECK(r.out.find("/nonexistent/model: no config.json") != std::string::npos);
  r = run_tiller("generate --model " + fixture("llama_gqa") + " --prompt hi");
  CHECK(r.status == 1);
  CHECK(r.out.find("no tokenizer files") != std::string::npos);
}

TEST_CASE("cli: logits --all writes HF's logits as a [T, V] .npy") {
  const auto ref = SafetensorsFile::open(fs::path(fixture("llama_gqa")) / "reference.safetensors");
  const Tensor tokens = ref->view("prompt.1.tokens"), logits = ref->view("prompt.1.logits");
  std::string ids;
  for (int64_t i = 0; i < tokens.numel(); i++) ids += (i ? "," : "") + std::to_string(tokens.ptr<int32_t>()[i]);
  const fs::path out = temp_path("logits.npy");
  const Run r = run_tiller("logits --model " + fixture("llama_gqa") + " --tokens " + ids + " --all --out " + out.string());
  REQUIRE(r.status == 0);
  const NpyArray a = read_npy(out);
  fs::remove(out);
  CHECK(a.shape == std::vector<int64_t>{logits.shape[0], logits.shape[1]});
  double worst = 0;
  for (int64_t i = 0; i < logits.numel(); i++) {
    const double e = logits.ptr<float>()[i];
    worst = std::max(worst, std::abs(a.data[size_t(i)] - e) / (1e-4 * (1 + std::abs(e))));
  }
  CHECK(worst <= 1.0);

  const Run last = run_tiller("logits --model " + fixture("llama_gqa") + " --tokens " + ids + " --out " + out.string());
  REQUIRE(last.status == 0);
  CHECK(read_npy(out).shape == std::vector<int64_t>{1, logits.shape[1]});
  fs::remove(out);
}

TEST_CASE("cli: generate --json is greedy by default config and reproducible with a seed") {
  // llama_gqa's generation_config.json samples (do_sample, temperature 0.7, top_p 0.9, top_k 20).
  const std::string base = "generate --model " + fixture("llama_gqa") + " --tokens 1,20,30 -n 12 --json --ignore-eos";
  const json a = last_json(run_tiller(base + " --seed 7").out), b = last_json(run_tiller(base + " --seed 7").out);
  CHECK(a["tokens"] == b["tokens"]);
  CHECK(a["tokens"].size() == 12);
  CHECK(a["seed"] == 7);
  CHECK(a["text"].is_null());  // the fixture has no tokenizer
  bool any_differs = false;
  for (int s = 8; s < 12 && !any_differs; s++) any_differs = last_json(run_tiller(base + " --seed " + std::to_string(s)).out)["tokens"] != a["tokens"];
  CHECK(any_differs);

  const auto ref = SafetensorsFile::open(fs::path(fixture("llama_gqa")) / "reference.safetensors");
  const Tensor prompt = ref->view("greedy.prompt"), greedy = ref->view("greedy.tokens");
  std::string ids;
  for (int64_t i = 0; i < prompt.numel(); i++) ids += (i ? "," : "") + std::to_string(prompt.ptr<int32_t>()[i]);
  const json g = last_json(run_tiller("generate --model " + fixture("llama_gqa") + " --tokens " + ids +
                                  " -n 32 --temperature 0 --ignore-eos --json").out);
  CHECK(g["tokens"].get<std::vector<int32_t>>() ==
        std::vector<int32_t>(greedy.ptr<int32_t>(), greedy.ptr<int32_t>() + greedy.numel()));
}

TEST_CASE("cli: a prompt longer than the context is refused") {
  std::string ids = "1";
  for (int i = 0; i < 130; i++) ids += ",5";  // llama_gqa's context is 128
  const Run r = run_tiller("generate --model " + fixture("llama_gqa") + " --tokens " + ids + " -n 4");
  CHECK(r.status == 1);
  CHECK(r.out.find("but the model's context is 128") != std::string::npos);
}

TEST_CASE("cli: random-init writes a loadable model, the same for the same seed") {
  const fs::path a = temp_path("rand-a"), b = temp_path("rand-b");
  const std::string cfg = (fs::path(fixture("qwen2_bias_tied")) / "config.json").string();
  REQUIRE(run_tiller("random-init --config " + cfg + " --dtype bf16 --seed 3 --out " + a.string()).status == 0);
  REQUIRE(run_tiller("random-init --config " + cfg + " --dtype bf16 --seed 3 --out " + b.string()).status == 0);
  CHECK(read_text_file(a / "model.safetensors") == read_text_file(b / "model.safetensors"));
  const Run g = run_tiller("generate --model " + a.string() + " --tokens 1,2,3 -n 5 --temperature 0 --json");
  CHECK(g.status == 0);
  CHECK(last_json(g.out)["tokens"].size() == 5);
  fs::remove_all(a);
  fs::remove_all(b);
  CHECK(run_tiller("random-init --config " + cfg + " --dtype int8 --out " + a.string()).status == 2);
}

TEST_CASE("cli: stories260K generates its golden story and tokenizes text") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (stories260K)");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const fs::path dir = test::shared_dir() / "models" / "stories260K";
  const json golden = read_json_file(dir / "golden.json");
  const json g = last_json(run_tiller("generate --model " + dir.string() + " --tokens 1 -n 40 --temperature 0 --json").out);
  const auto expected = golden["greedy_ids"].get<std::vector<int32_t>>();
  CHECK(g["tokens"].get<std::vector<int32_t>>() == std::vector<int32_t>(expected.begin(), expected.begin() + 40));
  CHECK(golden["text"].get<std::string>().rfind(g["text"].get<std::string>(), 0) == 0);

  const Run t = run_tiller("tokenize --model " + dir.string() + " --text \"Once upon a time\"");
  CHECK(t.status == 0);
  CHECK(json::parse(t.out) == json::parse("[1, 403, 407, 261, 378]"));
  const Run plain = run_tiller("tokenize --model " + dir.string() + " --no-special --text \"Once upon a time\"");
  CHECK(json::parse(plain.out) == json::parse("[403, 407, 261, 378]"));

  // Streaming shows the prompt, then the continuation: the same text --json returns.
  const std::string text_gen = "generate --model " + dir.string() + " --prompt \"Once upon a time\" -n 20 --temperature 0";
  const Run streamed = run_tiller(text_gen);
  CHECK(streamed.status == 0);
  CHECK(streamed.out.find("tok/s") != std::string::npos);
  const std::string continuation = last_json(run_tiller(text_gen + " --json").out)["text"];
  CHECK(continuation.size() > 20);
  CHECK(streamed.out.rfind("Once upon a time" + continuation + "\ntiller: prompt", 0) == 0);
  CHECK(run_tiller(text_gen + " --no-display-prompt").out.rfind(continuation, 0) == 0);
  // A prompt over the context is refused with the numbers, and not echoed first.
  std::string long_prompt;
  for (int i = 0; i < 600; i++) long_prompt += "hello ";
  const Run too_long = run_tiller("generate --model " + dir.string() + " --prompt \"" + long_prompt + "\" -n 4");
  CHECK(too_long.status != 0);
  CHECK(too_long.out.find("but the model's context is 512") != std::string::npos);
  CHECK(too_long.out.find("hello hello") == std::string::npos);
}

TEST_CASE("cli: render prints exactly the template's text; chat runs a conversation from stdin") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (tokenizers, stories260K)");
#if !TILLER_HAVE_TOKENIZERS
  TILLER_SKIP_UNLESS(false, "built without tokenizers");
#else
  const fs::path dir = test::shared_dir() / "data" / "tokenizers" / "llama3";
  const fs::path messages = temp_path("messages.json");
  const std::string conversation = R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])";
  std::ofstream(messages) << conversation;
  const Run r = run_tiller("render --model " + dir.string() + " --messages " + messages.string() +
                           " --add-generation-prompt --date \"26 Jul 2024\"");
  fs::remove(messages);
  CHECK(r.status == 0);
  ChatRenderOptions options = chat_options_for(read_tokenizer_config(dir));
  options.date = "26 Jul 2024";
  CHECK(r.out == ChatTemplate::select(read_tokenizer_config(dir)).render(nlohmann::ordered_json::parse(conversation), options));

  const fs::path stories = test::shared_dir() / "models" / "stories260K";
  const Run chat = run_shell("printf 'Hello\\n/reset\\nOnce upon a time\\n/exit\\n' | " + std::string(TILLER_BINARY) +
                             " chat --model " + stories.string() + " --chat-template llama2 -n 8 --temperature 0");
  CHECK(chat.status == 0);
  CHECK(chat.out.find("(conversation cleared)") != std::string::npos);
#endif
}
