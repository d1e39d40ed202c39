// OpenAI request bodies as the server and the batch runner receive them: JSON parsing with its
// depth and UTF-8 checks, /v1/completions and /v1/chat/completions (messages through the chat
// template and tokenizer), /tokenize's and /detokenize's prompts, and the scheduler request each
// accepted body becomes. The model is a committed fixture; the tokenizer a committed reduced one.
#include "fuzz/fuzz_target.h"
#include "kernels/cpu/cpu_backend.h"
#include "serving/openai_request.h"

using namespace tiller;
using namespace tiller::serving;

namespace {

struct Served {
  std::unique_ptr<CpuBackend> backend = std::make_unique<CpuBackend>(1);
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  ServedModel served;
  Served() {
    const auto dir = fuzz::source_dir() / "tests" / "fixtures" / "models" / "llama_gqa";
    model = Model::load(dir, *backend);
#if TILLER_HAVE_TOKENIZERS
    tokenizer = load_tokenizer(fuzz::source_dir() / "fuzz" / "tokenizers" / "smollm2");
#endif
    served = describe_model(*model, tokenizer.get(), dir, "fuzz-model", 64, "chatml");
    served.chat_options.limits.max_steps = 200'000;
  }
};

const Served& served() {
  static const Served s;
  return s;
}

}  // namespace

TILLER_FUZZ_TARGET(openai_request, "an OpenAI request body: completions, chat, tokenize, detokenize") {
  const ServedModel& m = served().served;
  ojson body;
  if (!fuzz::accepted([&] { body = parse_body(std::string(data)); })) return;
  for (const Endpoint endpoint : {Endpoint::Completions, Endpoint::Chat}) {
    ApiRequest r;
    const bool ok = fuzz::accepted([&] {
      r = endpoint == Endpoint::Chat ? parse_chat_request(body, m) : parse_completion_request(body, m, 8);
    });
    if (!ok) continue;
    fuzz::fuzz_check(!r.prompts.empty(), "an accepted request has a prompt");
    fuzz::fuzz_check(r.n >= 1 && r.max_tokens >= 0, "n and max_tokens are in range");
    for (size_t i = 0; i < r.prompts.size(); i++) {
      const GenerationRequest g = generation_request(r, i);
      fuzz::fuzz_check(!g.prompt.empty(), "a prompt has tokens");
      fuzz::fuzz_check(int64_t(g.prompt.size()) + g.max_tokens <= m.ctx || (r.echo && g.max_tokens == 0),
                       "prompt + max_tokens fits the context");
      for (int32_t id : g.prompt) fuzz::fuzz_check(m.tokenizer || (id >= 0 && id < m.vocab_size()), "prompt ids are in the vocabulary");
    }
  }
  if (auto p = body.find("prompt"); p != body.end()) fuzz::accepted([&] { (void)encode_prompt(*p, m, "prompt"); });
  if (auto t = body.find("tokens"); t != body.end()) fuzz::accepted([&] { (void)m.decode(encode_prompt(*t, m, "tokens")); });
  if (auto msgs = body.find("messages"); msgs != body.end())
    fuzz::accepted([&] { (void)encode_messages(*msgs, body.value("tools", ojson()), m); });
}
