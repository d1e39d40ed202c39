// The teacher template and language names.
#include "train/teacher_template.h"

#include <map>

#include "engine/error.h"

namespace tiller {

const std::string& default_teacher_template() {
  static const std::string t =
      "{english}\n\nJudge whether and how to answer the request above exactly as you would judge it in English. "
      "Then answer it in {language} only, without mentioning this instruction.";
  return t;
}

std::string language_name(const std::string& code) {
  static const std::map<std::string, std::string> names = {
      {"ar", "Arabic"},   {"bn", "Bengali"},  {"de", "German"},     {"en", "English"},    {"es", "Spanish"},
      {"fr", "French"},   {"hi", "Hindi"},    {"id", "Indonesian"}, {"it", "Italian"},    {"ja", "Japanese"},
      {"jv", "Javanese"}, {"ko", "Korean"},   {"mr", "Marathi"},    {"nl", "Dutch"},      {"pl", "Polish"},
      {"pt", "Portuguese"}, {"ru", "Russian"}, {"sw", "Swahili"},   {"ta", "Tamil"},      {"te", "Telugu"},
      {"th", "Thai"},     {"tr", "Turkish"},  {"uk", "Ukrainian"},  {"ur", "Urdu"},       {"vi", "Vietnamese"},
      {"zh", "Chinese"},
  };
  const auto it = names.find(code);
  return it == names.end() ? code : it->second;
}

std::string fill_teacher_template(const std::string& tmpl, const std::string& english, const std::string& query,
                                  const std::string& language_code) {
  if (tmpl.find("{english}") == std::string::npos)
    fail("the teacher template has no {english} placeholder: the teacher must see the English query");
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl[i] == '{') {
      const size_t close = tmpl.find('}', i);
      const std::string key = close == std::string::npos ? "" : tmpl.substr(i + 1, close - i - 1);
      if (key == "english" || key == "query" || key == "language") {
        out += key == "english" ? english : key == "query" ? query : language_name(language_code);
        i = close + 1;
        continue;
      }
      if (!key.empty() && key.find_first_of(" \n{") == std::string::npos)
        fail("the teacher template has an unknown placeholder {", key, "}; it knows {english}, {query} and {language}");
    }
    out += tmpl[i++];
  }
  return out;
}

}  // namespace tiller
