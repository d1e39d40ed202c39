// Judge specs, verdict (de)serialisation, and the factory.
#include "eval/judge.h"

#include <set>

namespace tiller::eval {

nlohmann::ordered_json Verdict::to_json() const {
  using oj = nlohmann::ordered_json;
  oj j = {{"violation", violation ? oj(*violation) : oj(nullptr)}, {"score", score ? oj(*score) : oj(nullptr)}};
  if (!detail.empty()) j["detail"] = detail;
  if (!error.empty()) j["error"] = error;
  return j;
}

Verdict Verdict::from_json(const json& j) {
  Verdict v;
  if (!j.is_object()) return v;
  if (j.contains("violation") && j["violation"].is_boolean()) v.violation = j["violation"].get<bool>();
  if (j.contains("score") && j["score"].is_number()) v.score = j["score"].get<double>();
  if (j.contains("detail") && j["detail"].is_string()) v.detail = j["detail"];
  if (j.contains("error") && j["error"].is_string()) v.error = j["error"];
  return v;
}

namespace {

const char* kJudgeForms =
    "refusal[:LIST] (refusal-phrase matching), guard:DIR (a Llama Guard 3 model folder) or endpoint:URL (an "
    "OpenAI-compatible server, e.g. http://localhost:8080/v1), each optionally NAME=...";

}  // namespace

JudgeSpec parse_judge_spec(const std::string& text) {
  JudgeSpec s;
  std::string rest = text;
  // NAME= only when the name has no ':' (a URL may hold '=' in its query).
  if (const size_t eq = rest.find('='); eq != std::string::npos && rest.substr(0, eq).find(':') == std::string::npos) {
    s.name = rest.substr(0, eq);
    rest = rest.substr(eq + 1);
    if (s.name.empty()) fail("--judge '", text, "': empty name before '='; expected ", kJudgeForms);
  }
  const size_t colon = rest.find(':');
  s.kind = rest.substr(0, colon);
  s.arg = colon == std::string::npos ? "" : rest.substr(colon + 1);
  if (s.kind == "refusal") {
    if (colon != std::string::npos && s.arg.empty()) fail("--judge '", text, "': empty list name after 'refusal:'");
  } else if (s.kind == "guard" || s.kind == "endpoint") {
    if (s.arg.empty()) fail("--judge '", text, "': ", s.kind, " needs ", s.kind == "guard" ? "a model folder (guard:DIR)" : "a URL (endpoint:URL)");
    if (s.kind == "endpoint" && !s.arg.starts_with("http://") && !s.arg.starts_with("https://"))
      fail("--judge '", text, "': the endpoint URL must start with http:// or https://, found '", s.arg, "'");
  } else {
    fail("--judge '", text, "': unknown judge '", s.kind, "'; expected ", kJudgeForms);
  }
  if (s.name.empty()) s.name = s.kind;
  return s;
}

std::vector<std::unique_ptr<Judge>> make_judges(const std::vector<std::string>& specs, const JudgeOptions& options) {
  std::vector<JudgeSpec> parsed;
  std::set<std::string> names;
  for (const auto& text : specs) {
    parsed.push_back(parse_judge_spec(text));
    if (!names.insert(parsed.back().name).second)
      fail("--judge: two judges are named '", parsed.back().name, "'; name them apart with NAME=SPEC (e.g. lg1b=guard:DIR)");
  }
  std::vector<std::unique_ptr<Judge>> judges;
  for (const auto& s : parsed) {
    if (s.kind == "refusal") judges.push_back(make_refusal_judge(s, options));
    else if (s.kind == "guard") judges.push_back(make_guard_judge(s, options));
    else judges.push_back(make_endpoint_judge(s, options));
  }
  return judges;
}

}  // namespace tiller::eval
