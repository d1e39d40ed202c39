// Parsing --train and --lora-targets.
#include "train/train_spec.h"

#include <algorithm>
#include <sstream>

#include "engine/error.h"
#include "steering/head_selection.h"

namespace tiller {
namespace {

constexpr Projection kLayerProjections[] = {Projection::Q,    Projection::K,  Projection::V,   Projection::O,
                                            Projection::Gate, Projection::Up, Projection::Down};

std::string strip(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

const char* train_kind_name(TrainKind kind) {
  switch (kind) {
    case TrainKind::Lora: return "lora";
    case TrainKind::Columns: return "columns";
    case TrainKind::Full: return "full";
  }
  return "?";
}

std::vector<Projection> parse_lora_targets(const std::string& text) {
  if (strip(text) == "all-linear") return {std::begin(kLayerProjections), std::end(kLayerProjections)};
  std::vector<Projection> out;
  std::stringstream ss(text);
  std::string name;
  while (std::getline(ss, name, ',')) {
    name = strip(name);
    if (name.empty()) continue;
    const auto* it = std::find_if(std::begin(kLayerProjections), std::end(kLayerProjections),
                                  [&](Projection p) { return name == projection_name(p); });
    if (it == std::end(kLayerProjections)) {
      std::string known;
      for (Projection p : kLayerProjections) known += std::string(known.empty() ? "" : ", ") + projection_name(p);
      fail("--lora-targets: '", name, "' is not a projection of this model's decoder layers; expected some of ", known,
           " (PEFT's module names), or all-linear");
    }
    if (std::find(out.begin(), out.end(), *it) == out.end()) out.push_back(*it);
  }
  if (out.empty()) fail("--lora-targets: no target given (e.g. q_proj,v_proj)");
  return out;
}

TrainSpec parse_train_spec(const std::string& text, const ModelConfig& config) {
  TrainSpec spec;
  if (text == "lora") {
    spec.kind = TrainKind::Lora;
  } else if (text == "full") {
    spec.kind = TrainKind::Full;
  } else if (text.rfind("columns:", 0) == 0) {
    spec.kind = TrainKind::Columns;
    spec.heads_file = text.substr(8);
    if (spec.heads_file.empty()) fail("--train columns:FILE needs a head list file ([[layer, head], ...])");
    spec.heads = read_head_list(spec.heads_file, config.n_layers, config.n_heads);
    if (spec.heads.empty()) fail("--train ", text, ": the head list is empty");
  } else {
    fail("--train: expected lora, columns:HEADS.json or full; found '", text, "'");
  }
  return spec;
}

std::string TrainSpec::describe() const {
  std::ostringstream os;
  os << train_kind_name(kind);
  if (kind == TrainKind::Lora) {
    os << " r=" << lora.rank << " alpha=" << lora.alpha << " dropout=" << lora.dropout << " targets=";
    for (size_t i = 0; i < lora.targets.size(); i++) os << (i ? "," : "") << projection_name(lora.targets[i]);
  } else if (kind == TrainKind::Columns) {
    os << " heads=";
    for (size_t i = 0; i < heads.size(); i++) os << (i ? "," : "") << heads[i].first << ":" << heads[i].second;
  }
  return os.str();
}

}  // namespace tiller
