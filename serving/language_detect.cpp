// Script-first language detection with CLD2 among same-script candidates.
#include "serving/language_detect.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>

#include "engine/error.h"
#include "engine/tokenizer/unicode.h"

#if TILLER_HAVE_CLD2
#include <cld2/public/compact_lang_det.h>
#include <cld2/public/encodings.h>
#include <cld2/internal/lang_script.h>
#endif

namespace tiller::serving {

namespace {

// Scripts by Unicode block (letters only are counted), and the languages written in each. Latin
// is everything else: a configured language absent from this table is taken to be written in it.
struct ScriptRange {
  uint32_t lo, hi;
  const char* script;
};
constexpr ScriptRange kScripts[] = {
    {0x0370, 0x03FF, "Greek"},      {0x1F00, 0x1FFF, "Greek"},      {0x0400, 0x052F, "Cyrillic"},
    {0x0530, 0x058F, "Armenian"},   {0x0590, 0x05FF, "Hebrew"},     {0x0600, 0x06FF, "Arabic"},
    {0x0750, 0x077F, "Arabic"},     {0x08A0, 0x08FF, "Arabic"},     {0xFB50, 0xFDFF, "Arabic"},
    {0xFE70, 0xFEFF, "Arabic"},     {0x0900, 0x097F, "Devanagari"}, {0x0980, 0x09FF, "Bengali"},
    {0x0A00, 0x0A7F, "Gurmukhi"},   {0x0A80, 0x0AFF, "Gujarati"},   {0x0B00, 0x0B7F, "Oriya"},
    {0x0B80, 0x0BFF, "Tamil"},      {0x0C00, 0x0C7F, "Telugu"},     {0x0C80, 0x0CFF, "Kannada"},
    {0x0D00, 0x0D7F, "Malayalam"},  {0x0D80, 0x0DFF, "Sinhala"},    {0x0E00, 0x0E7F, "Thai"},
    {0x0E80, 0x0EFF, "Lao"},        {0x1000, 0x109F, "Myanmar"},    {0x10A0, 0x10FF, "Georgian"},
    {0x1100, 0x11FF, "Hangul"},     {0x3130, 0x318F, "Hangul"},     {0xAC00, 0xD7AF, "Hangul"},
    {0x1200, 0x139F, "Ethiopic"},   {0x1780, 0x17FF, "Khmer"},      {0x3040, 0x30FF, "Kana"},
    {0x31F0, 0x31FF, "Kana"},       {0xFF66, 0xFF9F, "Kana"},       {0x3400, 0x4DBF, "Han"},
    {0x4E00, 0x9FFF, "Han"},        {0xF900, 0xFAFF, "Han"},        {0x20000, 0x3134F, "Han"},
};

const std::map<std::string, std::vector<std::string>>& script_languages() {
  static const std::map<std::string, std::vector<std::string>> m = {
      {"Greek", {"el"}},
      {"Cyrillic", {"ru", "uk", "bg", "sr", "mk", "be", "kk", "ky", "mn", "tg"}},
      {"Armenian", {"hy"}},
      {"Hebrew", {"he", "yi"}},
      {"Arabic", {"ar", "fa", "ur", "ps", "ug", "ku", "sd"}},
      {"Devanagari", {"hi", "mr", "ne", "sa"}},
      {"Bengali", {"bn", "as"}},
      {"Gurmukhi", {"pa"}},
      {"Gujarati", {"gu"}},
      {"Oriya", {"or"}},
      {"Tamil", {"ta"}},
      {"Telugu", {"te"}},
      {"Kannada", {"kn"}},
      {"Malayalam", {"ml"}},
      {"Sinhala", {"si"}},
      {"Thai", {"th"}},
      {"Lao", {"lo"}},
      {"Myanmar", {"my"}},
      {"Georgian", {"ka"}},
      {"Hangul", {"ko"}},
      {"Ethiopic", {"am", "ti"}},
      {"Khmer", {"km"}},
      {"Kana", {"ja"}},
      {"Han", {"zh", "ja"}},
  };
  return m;
}

const char* script_of(uint32_t cp) {
  for (const ScriptRange& r : kScripts) {
    if (cp >= r.lo && cp <= r.hi) return r.script;
  }
  return "Latin";
}

std::string script_of_language(const std::string& code) {
  for (const auto& [script, langs] : script_languages()) {
    if (script == "Han") continue;  // ja is Kana's, zh Han's
    if (std::find(langs.begin(), langs.end(), code) != langs.end()) return script;
  }
  return code == "zh" ? "Han" : "Latin";
}

#if TILLER_HAVE_CLD2
// CLD2 spells a few languages the pre-2009 way.
std::string from_cld2(CLD2::Language l) {
  std::string c = CLD2::LanguageCode(l);
  if (c == "jw") return "jv";
  if (c == "iw") return "he";
  if (c == "zh-Hant") return "zh";
  return c;
}

CLD2::Language to_cld2(const std::string& code) {
  const std::string c = code == "jv" ? "jw" : code == "he" ? "iw" : code;
  return CLD2::GetLanguageFromName(c.c_str());
}

// The first of CLD2's top three that is a candidate, with a score, when `hint` boosts a language.
std::optional<std::pair<std::string, double>> cld2_pick(std::string_view text, const std::vector<std::string>& candidates,
                                                        CLD2::Language hint, bool* reliable) {
  CLD2::Language lang3[3];
  int percent3[3], text_bytes = 0;
  double score3[3];
  bool is_reliable = false;
  const CLD2::CLDHints hints{nullptr, nullptr, CLD2::UNKNOWN_ENCODING, hint};
  CLD2::ExtDetectLanguageSummary(text.data(), int(text.size()), true, &hints, CLD2::kCLDFlagBestEffort, lang3, percent3,
                                 score3, nullptr, &text_bytes, &is_reliable);
  if (reliable) *reliable = is_reliable;
  for (int k = 0; k < 3; k++) {
    const std::string c = from_cld2(lang3[k]);
    if (std::find(candidates.begin(), candidates.end(), c) != candidates.end()) return std::make_pair(c, percent3[k] * score3[k]);
  }
  return std::nullopt;
}
#endif

}  // namespace

bool LanguageDetector::cld2_available() { return TILLER_HAVE_CLD2; }

LanguageDetector::LanguageDetector(std::vector<std::string> languages) : languages_(std::move(languages)) {
  for (const std::string& code : languages_) {
    const bool in_table = script_of_language(code) != "Latin";
#if TILLER_HAVE_CLD2
    const bool known = in_table || to_cld2(code) != CLD2::UNKNOWN_LANGUAGE;
#else
    const bool known = in_table || code.size() == 2;
#endif
    if (!known) fail("language '", code, "' is not a language code the detector knows (use ISO 639-1 codes such as bn, sw, zh)");
  }
}

std::optional<LanguageGuess> LanguageDetector::detect(std::string_view text) const {
  // The dominant script among the letters.
  std::map<std::string, int> letters;
  bool kana = false;
  for (size_t i = 0; i < text.size();) {
    const uint32_t cp = utf8_next(text, i);
    if (cp < 0x80 ? !std::isalpha(int(cp)) : !is_alphanumeric(cp) || is_numeric(cp)) continue;
    const std::string s = script_of(cp);
    kana = kana || s == "Kana";
    letters[s == "Kana" ? "Han" : s]++;  // Japanese mixes kana and Han
  }
  if (letters.empty()) return std::nullopt;
  const std::string script = std::max_element(letters.begin(), letters.end(), [](auto& a, auto& b) {
                               return a.second < b.second;
                             })->first;
  std::vector<std::string> candidates;
  for (const std::string& code : languages_) {
    const std::string s = script_of_language(code);
    if (s == script || (script == "Han" && s == "Kana")) candidates.push_back(code);
  }
  if (candidates.empty()) return std::nullopt;
  if (script == "Han" && candidates.size() == 2) {  // zh and ja: kana decides
    return LanguageGuess{kana ? "ja" : "zh", "script"};
  }
  if (candidates.size() == 1) return LanguageGuess{candidates[0], "script"};
#if TILLER_HAVE_CLD2
  // CLD2's own answer when it is a candidate and reliable; else each candidate boosted in turn
  // (CLD2's language hint), keeping the one that comes out on top with the highest score.
  bool reliable = false;
  const auto plain = cld2_pick(text, candidates, CLD2::UNKNOWN_LANGUAGE, &reliable);
  if (plain && reliable) return LanguageGuess{plain->first, "cld2"};
  std::optional<std::pair<std::string, double>> best;
  for (const std::string& c : candidates) {
    const auto got = cld2_pick(text, {c}, to_cld2(c), nullptr);
    if (got && (!best || got->second > best->second)) best = got;
  }
  if (best) return LanguageGuess{best->first, "cld2"};
  if (plain) return LanguageGuess{plain->first, "cld2"};
#endif
  return std::nullopt;
}

}  // namespace tiller::serving
