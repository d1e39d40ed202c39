// Attribution prompts files (JSON lines).
#include "steering/attribution_prompts.h"

#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "engine/json_file.h"

namespace tiller {

void write_prompts_jsonl(const std::filesystem::path& path, const PromptSet& prompts) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) fail(path.string(), ": cannot open for writing");
    for (const auto* list : {&prompts.clean, &prompts.corrupted}) {
      for (const AttributionPrompt& p : *list) {
        json j = {{"kind", p.kind == AttributionPrompt::Kind::Clean ? "clean" : "corrupted"},
                  {"tokens", p.tokens},
                  {"target", p.target}};
        if (!p.slots.empty()) j["slots"] = p.slots;
        out << j.dump() << "\n";
      }
    }
    if (!out.flush()) fail(path.string(), ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

ReadPromptsResult read_prompts_jsonl(const std::filesystem::path& path, int64_t vocab_size, int64_t max_tokens,
                                     const std::function<void(const std::string&)>& warn) {
  std::istringstream in(read_text_file(path));
  ReadPromptsResult r;
  std::string line;
  int64_t line_no = 0;
  auto bad = [&](const std::string& what) {
    fail(path.string(), " line ", line_no, ": ", what,
         ". Each line must be {\"kind\": \"clean\"|\"corrupted\", \"tokens\": [ids], \"target\": id} "
         "(as --dump-prompts writes it)");
  };
  auto check_id = [&](const json& v, const char* field) -> int32_t {
    if (!v.is_number_integer()) bad(std::string(field) + " holds a value that is not an integer: " + v.dump());
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= vocab_size)
      bad(std::string(field) + " holds token id " + std::to_string(id) + ", outside the model's vocabulary [0, " +
          std::to_string(vocab_size) + "): the file was made for another model");
    return int32_t(id);
  };
  while (std::getline(in, line)) {
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      bad(std::string("not JSON (") + e.what() + ")");
    }
    if (!j.is_object()) bad("not a JSON object");
    AttributionPrompt p;
    const std::string kind = j.contains("kind") && j["kind"].is_string() ? j["kind"].get<std::string>() : "";
    if (kind == "clean") p.kind = AttributionPrompt::Kind::Clean;
    else if (kind == "corrupted") p.kind = AttributionPrompt::Kind::Corrupted;
    else bad("\"kind\" must be \"clean\" or \"corrupted\"");
    if (!j.contains("tokens") || !j["tokens"].is_array() || j["tokens"].empty()) bad("\"tokens\" must be a non-empty list");
    for (const json& v : j["tokens"]) p.tokens.push_back(check_id(v, "\"tokens\""));
    if (!j.contains("target")) bad("\"target\" is missing");
    p.target = check_id(j["target"], "\"target\"");
    if (j.contains("slots")) {
      if (!j["slots"].is_array() || j["slots"].size() != p.tokens.size()) bad("\"slots\" must list one slot per token");
      for (const json& v : j["slots"]) {
        if (!v.is_number_integer()) bad("\"slots\" holds a value that is not an integer");
        p.slots.push_back(v.get<int32_t>());
      }
    }
    if (int64_t(p.tokens.size()) > max_tokens) {
      r.skipped_too_long++;
      if (warn)
        warn(path.string() + " line " + std::to_string(line_no) + ": skipped, " + std::to_string(p.tokens.size()) +
             " tokens exceed the context of " + std::to_string(max_tokens));
      continue;
    }
    (p.kind == AttributionPrompt::Kind::Clean ? r.prompts.clean : r.prompts.corrupted).push_back(std::move(p));
  }
  if (r.prompts.clean.empty() || r.prompts.corrupted.empty())
    fail(path.string(), ": needs at least one usable \"clean\" and one \"corrupted\" prompt; found ",
         r.prompts.clean.size(), " and ", r.prompts.corrupted.size(),
         r.skipped_too_long ? " (after skipping prompts longer than the context)" : "");
  return r;
}

}  // namespace tiller
