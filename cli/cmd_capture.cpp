// tiller capture: dump a prompt's activations at a hook point as float32 .npy.
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/npy.h"
#include "steering/activation_capture.h"

namespace tiller::cli {

namespace {

const Command& capture_command() {
  static const Command c{
      "capture",
      "dump a prompt's activations at a hook point as float32 .npy [layers, tokens, ...]",
      "tiller capture --model DIR (--prompt TEXT | --tokens 1,2,3) --point POINT [--layers 0-3] --out FILE.npy",
      model_flags() + prompt_flags() +
          std::vector<Flag>{
              {"--point", "", "POINT",
               "attn_heads (o_proj input, [layers, T, H, d]), resid_pre / resid_post (residual stream entering / "
               "leaving each layer, [layers, T, D]) or final_norm ([1, T, D])",
               ""},
              {"--layers", "", "SPEC", "layers to dump: 3, 0-3, 0,2,5, last (not for final_norm)", "all"},
              {"--out", "-o", "FILE.npy", "output file", ""},
          },
      "Example:\n  tiller capture -m ./model --tokens 1,2,3 --point attn_heads --layers 0-1 --out z.npy   "
      "# numpy.load -> (2, 3, H, d)"};
  return c;
}

int run_capture(const Args& args) {
  const std::string out_path = args.required("--out");
  const std::string point_name = args.required("--point");
  const std::optional<HookPoint> point = parse_hook_point(point_name);
  if (!point || *point == HookPoint::Logits)
    throw UsageError{"--point expects attn_heads, resid_pre, resid_post or final_norm, found '" + point_name +
                     "' (for logits use tiller logits)"};
  const bool final_norm = *point == HookPoint::FinalNorm;
  if (final_norm && args.has("--layers")) throw UsageError{"--layers does not apply to final_norm (one per model)"};

  Session s = open_session(args, false);
  const ModelConfig& c = s.model->config();
  const std::vector<int32_t> prompt = prompt_tokens(args, s);
  const int64_t T = int64_t(prompt.size());
  if (T > c.max_position_embeddings)
    fail("the prompt has ", T, " tokens but the model's context is ", c.max_position_embeddings);
  const std::vector<int> layers = final_norm ? std::vector<int>{-1} : parse_layers(args.str("--layers", "all"), c.n_layers);

  KvCache kv(*s.backend, s.model->kv_cache_options(T));
  const SeqId seq = kv.create();
  ActivationCapture cap(*point, layers);
  ForwardOptions opt;
  opt.hook = &cap;
  const int last_layer = final_norm ? int(c.n_layers) : *std::max_element(layers.begin(), layers.end()) + 1;
  opt.end_layer = last_layer;  // no need to run past the last layer asked for
  constexpr int64_t kChunk = 512;  // rows per forward: bounds activation memory on long prompts
  for (int64_t start = 0; start < T; start += kChunk) {
    const int64_t end = std::min(T, start + kChunk);
    Batch batch;
    for (int64_t i = start; i < end; i++) batch.add(prompt[size_t(i)], seq, int32_t(i), final_norm);
    s.model->forward(batch, kv, opt);
  }

  std::vector<int64_t> shape = {int64_t(layers.size()), T};
  if (*point == HookPoint::AttnHeads) shape.insert(shape.end(), {c.n_heads, c.head_dim});
  else shape.push_back(c.hidden_size);
  std::vector<float> out;
  for (int l : layers) {
    const CapturedRows& rows = cap.at(l);
    TILLER_CHECK(rows.n_rows() == T, "captured ", rows.n_rows(), " rows of ", T);
    out.insert(out.end(), rows.data.begin(), rows.data.end());
  }
  write_npy(out_path, out.data(), shape);
  std::string dims;
  for (int64_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  std::fprintf(stderr, "tiller: wrote %s %s [%s]\n", out_path.c_str(), point_name.c_str(), dims.c_str());
  return 0;
}

const RegisterSubcommand kRegistered{60, capture_command, run_capture};

}  // namespace
}  // namespace tiller::cli
