// Which of a configured set of languages a text is in, for routing requests to a language's
// steering profile. The Unicode script decides where it can (Bengali letters are Bengali when
// Bengali is the only configured language written in them); otherwise CLD2 (Debian's libcld2)
// chooses among the configured languages that share the script. No guess outside the set.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tiller::serving {

struct LanguageGuess {
  std::string language;  // one of the configured codes
  const char* method;    // "script" or "cld2"
};

class LanguageDetector {
 public:
  // `languages`: ISO 639-1 codes ("bn", "sw", "zh", ...). Throws Error for a code neither the
  // script table nor CLD2 knows.
  explicit LanguageDetector(std::vector<std::string> languages);

  // The text's language among the configured ones, or nullopt (no letters, a script no configured
  // language uses, or CLD2 finds none of the candidates).
  std::optional<LanguageGuess> detect(std::string_view utf8) const;

  const std::vector<std::string>& languages() const { return languages_; }
  static bool cld2_available();  // false: built without libcld2, the script decides alone

 private:
  std::vector<std::string> languages_;
};

}  // namespace tiller::serving
