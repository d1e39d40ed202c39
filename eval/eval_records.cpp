// items.jsonl lines: fields in a fixed, readable order.
#include "eval/eval_records.h"

namespace tiller::eval {

std::string record_key(const EvalItem& item, const std::string& system, int sample) {
  return item.key() + "\x1f" + system + "\x1f" + std::to_string(sample);
}

std::string ItemRecord::key() const {
  return id + "\x1f" + language + "\x1f" + split + "\x1f" + system + "\x1f" + std::to_string(sample);
}

ItemRecord ItemRecord::for_item(const EvalItem& item, const std::string& system, int sample) {
  ItemRecord r;
  r.id = item.id;
  r.language = item.language;
  r.split = item.split();
  r.source = item.source;
  r.categories = item.categories;
  r.system = system;
  r.sample = sample;
  r.prompt = item.prompt;
  r.fields = item.extra;
  return r;
}

ojson ItemRecord::to_json() const {
  ojson j;
  j["id"] = id;
  j["language"] = language;
  j["split"] = split;
  j["category"] = categories.empty() ? ojson(nullptr) : ojson(categories.front());
  j["categories"] = categories;
  j["source"] = source;
  j["system"] = system;
  j["sample"] = sample;
  j["prompt"] = prompt;
  j["response"] = response;
  j["finish_reason"] = finish_reason;
  j["prompt_tokens"] = prompt_tokens;
  j["completion_tokens"] = completion_tokens;
  if (!error.empty()) j["error"] = error;
  ojson js = ojson::object();
  for (const auto& [name, v] : judges) js[name] = v.to_json();
  j["judges"] = js;
  if (!fields.empty()) j["fields"] = fields;
  return j;
}

ItemRecord ItemRecord::from_json(const json& j) {
  ItemRecord r;
  r.id = j.at("id").get<std::string>();
  r.language = j.at("language").get<std::string>();
  r.split = j.value("split", "harmful");
  r.source = j.value("source", "");
  if (j.contains("categories") && j["categories"].is_array()) r.categories = j["categories"].get<std::vector<std::string>>();
  r.system = j.at("system").get<std::string>();
  r.sample = j.at("sample").get<int>();
  r.prompt = j.value("prompt", "");
  r.response = j.value("response", "");
  r.finish_reason = j.value("finish_reason", "");
  r.error = j.value("error", "");
  r.prompt_tokens = j.value("prompt_tokens", int64_t(0));
  r.completion_tokens = j.value("completion_tokens", int64_t(0));
  if (j.contains("judges") && j["judges"].is_object()) {
    for (const auto& [name, v] : j["judges"].items()) r.judges[name] = Verdict::from_json(v);
  }
  if (j.contains("fields") && j["fields"].is_object()) r.fields = ojson::parse(j["fields"].dump());
  return r;
}

}  // namespace tiller::eval
