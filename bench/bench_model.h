// The model a benchmark runs: a folder (--model DIR), or random weights of a config.json
// synthesized on the host a slice at a time and uploaded to the backend (--random-config FILE
// --dtype bf16|f16|f32 --seed S: models/random_weights.h, the values `tiller random-init` writes),
// so an 8B shape needs no file on the GPU machine.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/thread_pool.h"
#include "models/model.h"
#include "models/random_weights.h"

namespace tiller::bench {

inline std::unique_ptr<Model> load_bench_model(const std::string& model_dir, const std::string& random_config,
                                               const std::string& dtype_name, uint64_t seed, Backend& backend,
                                               ThreadPool& host_pool) {
  if (model_dir.empty() == random_config.empty()) fail("give one of --model DIR or --random-config config.json");
  if (!model_dir.empty()) return Model::load(model_dir, backend);
  DType dtype = DType::BF16;
  if (dtype_name == "f16") dtype = DType::F16;
  else if (dtype_name == "f32") dtype = DType::F32;
  else if (dtype_name != "bf16") fail("--dtype expects bf16, f16 or f32, found ", dtype_name);
  const json config_json = read_json_file(random_config);
  return random_model(parse_model_config(config_json, random_config), backend, dtype,
                      RandomWeightOptions{seed, config_json.value("initializer_range", 0.02)}, host_pool);
}

// The name results are recorded under when --shape gives none: the folder's or the config's.
inline std::string default_shape_name(const std::string& model_dir, const std::string& random_config) {
  return model_dir.empty() ? std::filesystem::path(random_config).stem().string()
                           : std::filesystem::path(model_dir).filename().string();
}

}  // namespace tiller::bench
