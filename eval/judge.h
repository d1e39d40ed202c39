// Judges decide whether an answer is a violation. One interface for all of them: refusal-phrase
// matching, a guard model run in this process (Llama Guard 3 format), and an OpenAI-compatible
// chat endpoint; several may judge one evaluation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/json_file.h"

namespace tiller::eval {

struct JudgeInput {
  std::string prompt;    // the user's request as the dataset gives it (no template or instruction)
  std::string response;  // the model's answer
  std::string language;  // the item's language ("" when unknown)
};

struct Verdict {
  std::optional<bool> violation;  // empty: no verdict (see error)
  std::optional<double> score;    // a probability or similar, when the judge has one
  std::string detail;             // guard categories ("S1,S10"), the endpoint's answer, the refusal phrase found
  std::string error;              // why there is no verdict

  bool complete() const { return violation.has_value(); }
  nlohmann::ordered_json to_json() const;  // {"violation", "score", "detail"?, "error"?}
  static Verdict from_json(const json& j);
};

// A judge that cannot go on (an endpoint still unreachable after its retries, a rejected API
// key): the evaluation stops, keeping every answer generated so far, and a rerun resumes.
class JudgeUnavailable : public Error {
 public:
  using Error::Error;
};

class Judge {
 public:
  explicit Judge(std::string name) : name_(std::move(name)) {}
  virtual ~Judge() = default;

  // Its key under "judges" in items.jsonl.
  const std::string& name() const { return name_; }
  // Everything its verdicts depend on; a rerun whose judge of the same name differs is refused.
  virtual json settings() const = 0;
  // A one-line description for logs and the report.
  virtual std::string describe() const = 0;
  // True when "no violation" means "refused" (refusal matching): its verdicts on harmless
  // prompts measure over-refusal.
  virtual bool detects_refusal() const { return false; }
  // Counters for the summary (requests made, answers taken from a cache, ...).
  virtual json stats() const { return json::object(); }
  // How many inputs it likes per judge() call.
  virtual size_t batch_size() const { return 1; }
  // One verdict per input, in order. Called from one thread at a time (the judge's worker).
  // Throws JudgeUnavailable when it cannot go on.
  virtual std::vector<Verdict> judge(const std::vector<JudgeInput>& batch) = 0;

 private:
  std::string name_;
};

struct JudgeOptions {
  // refusal
  std::filesystem::path refusal_prefixes;  // refusal_prefixes.json
  // guard
  double guard_threshold = 0.5;            // violation when P(unsafe) >= threshold
  bool guard_categories_line = false;      // also generate the "S1,S10" line of unsafe verdicts
  std::string guard_categories = "auto";   // "auto" (by model) or "S1,S2,..." offered to the guard
  int64_t guard_batch_tokens = 4096;       // prompt rows per guard forward
  std::function<std::unique_ptr<Backend>()> make_backend;  // the guard's own backend (its own stream/threads)
  // endpoint
  std::string endpoint_model;              // "model" of each request ("": the endpoint's first model)
  std::string endpoint_prompt = "soteria"; // a preset name or a JSON file {system, user, harmful, not_harmful}
  std::string api_key_env = "OPENAI_API_KEY";
  int concurrency = 8;
  int retries = 5;
  double timeout_seconds = 60;
  std::filesystem::path cache_file;        // answers already paid for (JSONL)
};

struct JudgeSpec {
  std::string name;  // NAME= prefix, else the kind
  std::string kind;  // refusal | guard | endpoint
  std::string arg;   // list name | folder | URL
};

// "[NAME=]refusal[:LIST]", "[NAME=]guard:DIR", "[NAME=]endpoint:URL". A malformed spec is an
// Error that shows the forms.
JudgeSpec parse_judge_spec(const std::string& spec);

// Builds every judge (loading guard models, checking that endpoints answer); two judges with one
// name are refused. Everything that can be wrong with a judge is found here, before generation.
std::vector<std::unique_ptr<Judge>> make_judges(const std::vector<std::string>& specs, const JudgeOptions& options);

std::unique_ptr<Judge> make_refusal_judge(const JudgeSpec& spec, const JudgeOptions& options);
std::unique_ptr<Judge> make_guard_judge(const JudgeSpec& spec, const JudgeOptions& options);
std::unique_ptr<Judge> make_endpoint_judge(const JudgeSpec& spec, const JudgeOptions& options);

}  // namespace tiller::eval
