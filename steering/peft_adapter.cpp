// PEFT LoRA adapters <-> profiles: config fields as PEFT's LoraConfig spells them, tensors as
// PeftModel.save_pretrained names them ("base_model.model.<module>.lora_A.weight").
#include "steering/peft_adapter.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>

#include "engine/error.h"
#include "engine/safetensors.h"

namespace tiller {

namespace {

constexpr std::string_view kPrefix = "base_model.model.";

// PEFT's rank_pattern / alpha_pattern lookup: a key matches a module name as the regex (.*\.)?key$.
std::optional<double> pattern_value(const json& patterns, const std::string& module, const std::string& where) {
  if (!patterns.is_object()) return std::nullopt;
  for (auto it = patterns.begin(); it != patterns.end(); ++it) {
    bool match = false;
    try {
      match = std::regex_match(module, std::regex("(.*\\.)?" + it.key()));
    } catch (const std::regex_error&) {
      fail(where, ": pattern \"", it.key(), "\" in adapter_config.json is not a valid regular expression");
    }
    if (match) {
      if (!it.value().is_number()) fail(where, ": pattern \"", it.key(), "\" must map to a number");
      return it.value().get<double>();
    }
  }
  return std::nullopt;
}

}  // namespace

Profile read_peft_adapter(const std::filesystem::path& dir) {
  const std::string where = dir.string();
  const json cfg = read_json_file(dir / "adapter_config.json");
  if (!cfg.is_object()) fail(where, "/adapter_config.json: expected a JSON object");
  const std::string config_file = where + "/adapter_config.json";  // PEFT writes null for unset options
  const std::string type = json_optional_string(cfg, "peft_type", config_file);
  if (type != "LORA") fail(where, ": peft_type is \"", type, "\"; tiller applies LORA adapters only");
  auto flag = [&](const char* key) { return cfg.contains(key) && cfg[key].is_boolean() && cfg[key].get<bool>(); };
  if (flag("use_dora")) fail(where, ": a DoRA adapter (use_dora: true); tiller applies plain LoRA only");
  if (flag("fan_in_fan_out")) fail(where, ": fan_in_fan_out is true (Conv1D layers); Llama, Mistral and Qwen2 use Linear");
  if (flag("lora_bias")) fail(where, ": lora_bias is true (a trained bias on lora_B); tiller applies plain LoRA only");
  if (cfg.contains("target_parameters") && !cfg["target_parameters"].is_null() && !cfg["target_parameters"].empty())
    fail(where, ": target_parameters adapts raw parameters (", cfg["target_parameters"].dump(),
         "); tiller applies LoRA on Linear modules only");
  const std::string bias = json_optional_string(cfg, "bias", config_file, "none");
  if (bias != "none") fail(where, ": bias is \"", bias, "\": the adapter carries trained biases, which tiller does not apply");
  if (cfg.contains("modules_to_save") && !cfg["modules_to_save"].is_null() && !cfg["modules_to_save"].empty())
    fail(where, ": modules_to_save lists whole modules (", cfg["modules_to_save"].dump(),
         "); tiller applies low-rank deltas only");
  if (!cfg.value("r", json()).is_number() || !cfg.value("lora_alpha", json()).is_number())
    fail(where, "/adapter_config.json: needs numeric \"r\" and \"lora_alpha\"");
  const double alpha = cfg["lora_alpha"].get<double>();
  const bool rslora = flag("use_rslora");

  const auto weights = dir / "adapter_model.safetensors";
  if (!std::filesystem::exists(weights)) {
    fail(where, ": no adapter_model.safetensors", std::filesystem::exists(dir / "adapter_model.bin")
                                                     ? " (only adapter_model.bin: load it with PEFT and save_pretrained "
                                                       "it again, which writes safetensors)"
                                                     : "");
  }
  const auto file = SafetensorsFile::open(weights);
  struct Pair {
    const TensorInfo *a = nullptr, *b = nullptr;
  };
  std::map<std::string, Pair> modules;
  for (const auto& [name, info] : file->tensors()) {
    std::string key = name;
    if (key.starts_with(kPrefix)) key = key.substr(kPrefix.size());
    for (const char* tag : {".lora_A.default.weight", ".lora_B.default.weight"}) {  // older saves keep the name
      if (key.ends_with(tag)) key = key.substr(0, key.size() - std::strlen(tag)) + (tag[6] == 'A' ? ".lora_A.weight" : ".lora_B.weight");
    }
    const bool is_a = key.ends_with(".lora_A.weight"), is_b = key.ends_with(".lora_B.weight");
    if (!is_a && !is_b) fail(where, ": tensor \"", name, "\" is not a LoRA A/B matrix; tiller applies LoRA deltas only");
    const std::string module = key.substr(0, key.size() - std::strlen(".lora_A.weight"));
    if (!parse_module_name(module))
      fail(where, ": the adapter targets \"", module, "\", which is not a projection this model has "
           "(model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj, lm_head)");
    if (!info.dtype || !is_float(*info.dtype) || info.shape.size() != 2)
      fail(where, ": tensor \"", name, "\" must be an F32/F16/BF16 matrix, found ", info.dtype_name, " ", info.shape_string());
    (is_a ? modules[module].a : modules[module].b) = &info;
  }
  if (modules.empty()) fail(where, ": adapter_model.safetensors holds no LoRA matrices");

  Profile p;
  p.source = where;
  p.manifest.method = "peft";
  p.manifest.base_name = cfg.value("base_model_name_or_path", std::string());
  p.manifest.description = "PEFT LoRA adapter read from " + where;
  for (const auto& [module, pair] : modules) {
    if (!pair.a || !pair.b) fail(where, ": ", module, " has lora_", pair.a ? "A without lora_B" : "B without lora_A");
    WeightDelta d;
    d.kind = DeltaKind::LowRank;
    d.module = *parse_module_name(module);
    auto view = [&](const TensorInfo& info) {
      return HostTensor{*info.dtype, info.shape, std::shared_ptr<const void>(file, file->view(info).data)};
    };
    d.a = view(*pair.a);
    d.b = view(*pair.b);
    const int64_t r = d.a.shape[0];
    if (d.b.shape[1] != r) fail(where, ": ", module, " has lora_A ", d.a.shape_string(), " and lora_B ", d.b.shape_string());
    const double rank_cfg = pattern_value(cfg.value("rank_pattern", json()), module, where).value_or(cfg["r"].get<double>());
    if (int64_t(rank_cfg) != r)
      fail(where, ": ", module, " has rank ", r, " but adapter_config.json says ", rank_cfg, " (r / rank_pattern)");
    const double a = pattern_value(cfg.value("alpha_pattern", json()), module, where).value_or(alpha);
    d.scaling = float(rslora ? a / std::sqrt(double(r)) : a / double(r));
    p.deltas.push_back(std::move(d));
  }
  return p;
}

void write_peft_adapter(const Profile& p, const std::filesystem::path& dir, const std::string& base_model) {
  std::map<int64_t, int> rank_count;
  for (const WeightDelta& d : p.deltas) {
    if (d.kind != DeltaKind::LowRank)
      fail("a PEFT adapter holds LoRA deltas only; ", module_name(d.module), " has a ", delta_kind_name(d.kind), " delta");
    rank_count[d.a.shape[0]]++;
  }
  if (p.deltas.empty()) fail("the profile has no LoRA deltas to write as a PEFT adapter");
  const int64_t r = std::max_element(rank_count.begin(), rank_count.end(),
                                     [](auto& x, auto& y) { return x.second < y.second; })->first;
  const double alpha = [&] {
    for (const WeightDelta& d : p.deltas) {
      if (d.a.shape[0] == r) return double(d.scaling) * double(r);
    }
    return double(r);
  }();
  json targets = json::array(), rank_pattern = json::object(), alpha_pattern = json::object();
  SafetensorsWriter w;
  for (const WeightDelta& d : p.deltas) {
    const std::string m = module_name(d.module);
    targets.push_back(m);
    const int64_t rank = d.a.shape[0];
    if (rank != r) rank_pattern[m] = rank;
    const double a = double(d.scaling) * double(rank);
    if (std::abs(a - alpha) > 1e-6 * std::abs(alpha)) alpha_pattern[m] = a;
    for (const auto& [suffix, t] : {std::pair{".lora_A.weight", &d.a}, std::pair{".lora_B.weight", &d.b}}) {
      const HostTensor ht = *t;
      w.add(std::string(kPrefix) + m + suffix, ht.dtype, ht.shape, [ht](void* dst) { std::memcpy(dst, ht.data.get(), ht.nbytes()); });
    }
  }
  const json cfg = {{"peft_type", "LORA"},          {"task_type", "CAUSAL_LM"},     {"base_model_name_or_path", base_model},
                    {"r", r},                        {"lora_alpha", alpha},          {"target_modules", targets},
                    {"rank_pattern", rank_pattern},  {"alpha_pattern", alpha_pattern}, {"lora_dropout", 0.0},
                    {"bias", "none"},                {"fan_in_fan_out", false},      {"use_rslora", false},
                    {"use_dora", false},             {"modules_to_save", nullptr},   {"inference_mode", true},
                    {"init_lora_weights", true}};
  std::filesystem::create_directories(dir);
  w.set_metadata("format", "pt");
  w.write(dir / "adapter_model.safetensors");
  std::ofstream(dir / "adapter_config.json") << cfg.dump(2) << "\n";
}

}  // namespace tiller
