// The English behaviour sets (AdvBench, HarmBench) and the generic CSV / JSONL files.
#include <algorithm>

#include "engine/error.h"
#include "eval/csv_reader.h"
#include "eval/dataset.h"
#include "eval/dataset_files.h"

namespace tiller::eval {

namespace fs = std::filesystem;

Dataset load_advbench(const fs::path& path) {
  Dataset d;
  d.kind = "advbench";
  d.path = path;
  const fs::path file = resolve_dataset_file(path, "harmful_behaviors.csv", d.kind);
  const CsvTable t(file);
  add_dataset_file(d, file);
  const size_t goal = t.require("goal", "AdvBench's behaviours; harmful_strings.csv is not a behaviour set");
  const std::optional<size_t> target = t.find("target");
  for (const auto& row : t.rows()) {
    const std::string& text = t.at(row, goal);
    // One upstream copy has the header written "target,goal" over goal,target columns.
    if (text.starts_with("Sure, here"))
      fail(t.origin(), ":", row.line, ": the 'goal' column holds a target (\"", text.substr(0, 40),
           "...\"): the header names the columns the wrong way round; fix the header to goal,target");
    EvalItem item;
    item.id = std::to_string(d.items.size());
    item.language = "en";
    item.source = "advbench";
    item.prompt = text;
    item.english = text;
    if (target) item.extra["target"] = t.at(row, *target);
    d.items.push_back(std::move(item));
  }
  finish_dataset(d);
  return d;
}

Dataset load_harmbench(const fs::path& path) {
  Dataset d;
  d.kind = "harmbench";
  d.path = path;
  const fs::path file = resolve_dataset_file(path, "harmbench_behaviors_text_all.csv", d.kind);
  const CsvTable t(file);
  add_dataset_file(d, file);
  const size_t behavior = t.require("Behavior", "the behaviour text"), id = t.require("BehaviorID", "the behaviour id");
  const size_t semantic = t.require("SemanticCategory", "the harm category");
  const size_t context = t.require("ContextString", "context of contextual behaviours");
  const std::optional<size_t> functional = t.find("FunctionalCategory"), tags = t.find("Tags");
  for (const auto& row : t.rows()) {
    EvalItem item;
    item.id = t.at(row, id);
    item.language = "en";
    item.source = "harmbench";
    item.categories = {t.at(row, semantic)};
    // As HarmBench's DirectRequest baseline builds its test cases.
    const std::string& ctx = t.at(row, context);
    item.prompt = ctx.empty() ? t.at(row, behavior) : ctx + "\n\n---\n\n" + t.at(row, behavior);
    item.english = item.prompt;
    if (functional) item.extra["functional_category"] = t.at(row, *functional);
    if (tags && !t.at(row, *tags).empty()) item.extra["tags"] = t.at(row, *tags);
    if (item.id.empty()) fail(t.origin(), ":", row.line, ": empty BehaviorID");
    d.items.push_back(std::move(item));
  }
  finish_dataset(d);
  return d;
}

Dataset load_question_csv(const fs::path& path, const std::string& default_language) {
  Dataset d;
  d.kind = "csv";
  d.path = path;
  if (fs::is_directory(path)) fail("csv: expected a CSV file, found the folder ", path.string());
  const CsvTable t(path);
  add_dataset_file(d, path);
  const size_t question = t.require("question", "the prompt of each row, as in XThreatBench");
  const std::optional<size_t> id = t.find("id"), language = t.find("language"), category = t.find("category");
  for (const auto& row : t.rows()) {
    EvalItem item;
    item.id = id ? t.at(row, *id) : std::to_string(d.items.size());
    item.language = language && !t.at(row, *language).empty() ? t.at(row, *language) : default_language;
    if (category && !t.at(row, *category).empty()) item.categories = {t.at(row, *category)};
    item.source = "csv:" + path.filename().string();
    item.prompt = t.at(row, question);
    if (item.language == "en") item.english = item.prompt;
    for (size_t c = 0; c < t.header().size(); c++) {
      if (c != question && c != id && c != language && c != category) item.extra[t.header()[c]] = t.at(row, c);
    }
    if (item.prompt.empty()) fail(t.origin(), ":", row.line, ": the 'question' cell is empty");
    d.items.push_back(std::move(item));
  }
  finish_dataset(d);
  return d;
}

Dataset load_prompt_jsonl(const fs::path& path, const std::string& default_language) {
  Dataset d;
  d.kind = "jsonl";
  d.path = path;
  if (fs::is_directory(path)) fail("jsonl: expected a JSONL file, found the folder ", path.string());
  const std::string text = read_text_file(path);
  add_dataset_file(d, path);
  size_t start = 0;
  int64_t line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    ojson j;
    try {
      j = ojson::parse(line);
    } catch (const ojson::parse_error& e) {
      fail(where, ": malformed JSON: ", e.what());
    }
    if (!j.is_object()) fail(where, ": expected an object like {\"prompt\": \"...\"}, found ", j.type_name());
    EvalItem item;
    if (j.contains("messages")) {
      const ojson& m = j["messages"];
      if (!m.is_array() || m.empty()) fail(where, ": \"messages\" must be a non-empty list of {role, content}");
      for (const auto& msg : m) {
        if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string() || !msg.contains("content") ||
            !msg["content"].is_string())
          fail(where, ": each message needs a \"role\" and a \"content\" string");
        if (msg["role"] == "user") item.prompt = msg["content"];
      }
      if (m.back()["role"] != "user") fail(where, ": the conversation must end with a user message (the model answers it)");
      item.messages = m;
    } else if (j.contains("prompt") && j["prompt"].is_string()) {
      item.prompt = j["prompt"];
    } else if (j.contains("text") && j["text"].is_string()) {  // toxicity sets' spelling
      item.prompt = j["text"];
    } else {
      fail(where, ": each line needs \"prompt\" or \"text\" (a string) or \"messages\" (a list of {role, content})");
    }
    if (j.contains("id")) {
      if (j["id"].is_string()) item.id = j["id"];
      else if (j["id"].is_number_integer()) item.id = std::to_string(j["id"].get<int64_t>());
      else fail(where, ": \"id\" must be a string or an integer");
    } else {
      item.id = std::to_string(line_no);
    }
    item.language = default_language;
    if (j.contains("language")) {
      if (!j["language"].is_string()) fail(where, ": \"language\" must be a string such as \"bn\"");
      item.language = j["language"];
    }
    if (j.contains("category")) {
      const ojson& c = j["category"];
      if (c.is_string()) item.categories = {c.get<std::string>()};
      else if (c.is_array() && std::all_of(c.begin(), c.end(), [](const ojson& x) { return x.is_string(); }))
        item.categories = c.get<std::vector<std::string>>();
      else if (!c.is_null()) fail(where, ": \"category\" must be a string, a list of strings or null");
    }
    if (j.contains("harmful")) {
      if (!j["harmful"].is_boolean()) fail(where, ": \"harmful\" must be true or false");
      item.harmful = j["harmful"];
    } else if (j.contains("label")) {  // toxicity sets' and the probe's spelling: 1 / 0, or the class named
      const ojson& l = j["label"];
      const std::string name = l.is_string() ? l.get<std::string>() : "";
      if (l.is_boolean()) item.harmful = l.get<bool>();
      else if (l.is_number_integer() && (l == 0 || l == 1)) item.harmful = l == 1;
      else if (name == "harmful" || name == "unsafe" || name == "toxic") item.harmful = true;
      else if (name == "benign" || name == "harmless" || name == "unharmful" || name == "safe" || name == "non-toxic") item.harmful = false;
      else fail(where, ": \"label\" must be 1 / \"harmful\" / \"unsafe\" / \"toxic\" or 0 / \"benign\" / \"harmless\" / \"safe\", found ", l.dump());
    }
    if (j.contains("english") && j["english"].is_string()) item.english = j["english"].get<std::string>();
    else if (item.language == "en") item.english = item.prompt;
    item.source = "jsonl:" + path.filename().string();
    for (const auto& [key, value] : j.items()) {
      if (key != "messages" && key != "prompt" && key != "text" && key != "id" && key != "language" && key != "category" &&
          key != "harmful" && key != "english")
        item.extra[key] = value;
    }
    d.items.push_back(std::move(item));
  }
  finish_dataset(d);
  return d;
}

}  // namespace tiller::eval
