// One line of items.jsonl: a prompt's answer from one system (base or a profile) and one sample,
// with every judge's verdict. The key (id, language, split, system, sample) is what a rerun
// matches finished work on.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "eval/judge.h"

namespace tiller::eval {

struct ItemRecord {
  std::string id, language, split = "harmful", source;
  std::vector<std::string> categories;
  std::string system;  // "base" or a profile's name
  int sample = 0;
  std::string prompt;  // the item's text as the dataset gives it
  std::string response;
  std::string finish_reason;  // stop | length | error
  std::string error;          // why generation failed (finish_reason "error")
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::map<std::string, Verdict> judges;
  ojson fields = ojson::object();  // the item's passed-through fields (e.g. "label")

  bool harmful() const { return split != "harmless"; }
  bool generated() const { return finish_reason != "error"; }
  std::string key() const;
  ojson to_json() const;
  static ItemRecord from_json(const json& j);  // throws json::exception on a malformed line
  static ItemRecord for_item(const EvalItem& item, const std::string& system, int sample);
};

std::string record_key(const EvalItem& item, const std::string& system, int sample);

}  // namespace tiller::eval
