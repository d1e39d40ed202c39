// Prompt-only forwards that hand over each prompt's hidden state per layer, pooled over its tokens:
// the states `tiller probe` measures. The tap is steering/activation_capture.h's (the one behind
// `tiller capture`): layer l is ResidPost(l), the residual stream after block l; the last layer
// may instead be the final norm's output (FinalNorm), which is HF's hidden_states[-1].
//
// Prompts are packed whole into ragged batches of up to `batch_tokens` rows; each run names an
// adapter (0: the model as loaded, 1..n: a ProfileSet's profiles), so a base model and its
// steering profiles share every forward (a prompt's runs always the same one).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/hooks.h"
#include "models/model.h"

namespace tiller::eval {

enum class Pooling { Mean, Last };
const char* pooling_name(Pooling p);  // "mean" | "last"

struct StateTap {
  std::vector<int> layers;        // ascending, each in [0, L)
  Pooling pooling = Pooling::Mean;  // mean over the prompt's tokens (BOS included) or its last token
  bool final_norm = true;         // the last layer's state after the final norm (else before it)
  int64_t batch_tokens = 512;     // rows per forward; a longer prompt runs alone
};

// Where layer `layer`'s state comes from under `tap`: ResidPost, or FinalNorm for the last layer.
HookPoint tap_point(const StateTap& tap, int layer, int64_t n_layers);

struct PromptRun {
  std::span<const int32_t> tokens;  // [T] the prompt, BOS included when the model adds one
  int32_t adapter = 0;              // the ProfileSet adapter its rows name (0: none)
  // Runs in the same forward as the previous run: one prompt's systems share a batch, so the
  // layers a profile does not touch are computed identically for each (same kernels, same shapes).
  bool with_previous = false;
};

// sink(run, layer slot (index into tap.layers), pooled state [D]).
using StateSink = std::function<void(int64_t run, size_t slot, const float* state)>;

// Runs every prompt once (prompt only, no generation) and calls sink for each run and layer, in
// run order within each forward. delta: the ProfileSet the adapters name (null when all are 0).
// progress(runs done) after each forward.
void capture_pooled_states(Model& model, ProjectionDelta* delta, std::span<const PromptRun> runs, const StateTap& tap,
                           const StateSink& sink, const std::function<void(int64_t)>& progress = {});

}  // namespace tiller::eval
