// The teacher's context in distillation (METHODS §5): the English version of the query with an
// instruction to judge safety as in English and answer in the target language. A template is text
// with {english}, {query} (the target-language original) and {language} (its English name).
#pragma once

#include <string>

namespace tiller {

// The default, used unless --teacher-template gives a file:
//   "{english}\n\nJudge whether and how to answer the request above exactly as you would judge it in
//    English. Then answer it in {language} only, without mentioning this instruction."
const std::string& default_teacher_template();

// The template with its placeholders filled; refuses a template without {english} or with an
// unknown {placeholder}.
std::string fill_teacher_template(const std::string& tmpl, const std::string& english, const std::string& query,
                                  const std::string& language_code);

// "bn" -> "Bengali" for the languages of the shared safety sets (and a few more); other codes
// are returned as given.
std::string language_name(const std::string& code);

}  // namespace tiller
