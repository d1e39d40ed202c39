// Added tokens from tokenizer.json and tokenizer_config.json, numbered and flagged as HF does.
#include "engine/tokenizer/hf_added_vocabulary.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/tokenizer/hf_json.h"

namespace tiller {
namespace {

// transformers' named special-token attributes, in the order it adds missing ones.
constexpr const char* kSpecialAttributes[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};

// An AddedToken written as a JSON object (Python's AddedToken defaults: normalized = !special).
AddedToken token_from_object(const json& t, const std::string& where) {
  AddedToken tok;
  tok.content = json_string(t, "content", where);
  tok.special = json_bool(t, "special", where, false);
  tok.lstrip = json_bool(t, "lstrip", where, false);
  tok.rstrip = json_bool(t, "rstrip", where, false);
  tok.normalized = json_bool(t, "normalized", where, !tok.special);
  tok.single_word = json_bool(t, "single_word", where, false);
  return tok;
}

json plain(const nlohmann::ordered_json& v) { return json::parse(v.dump()); }

bool same_flags(const AddedToken& a, const AddedToken& b) {
  return a.special == b.special && a.lstrip == b.lstrip && a.rstrip == b.rstrip && a.normalized == b.normalized &&
         a.single_word == b.single_word;
}

// A named special token as transformers reads it from the config: a string, or a serialized
// AddedToken; anything else is ignored, as transformers ignores it.
std::optional<AddedToken> named_token(const nlohmann::ordered_json& ov, const std::string& where) {
  const json v = plain(ov);
  AddedToken tok;
  if (v.is_string()) {
    tok.content = v.get<std::string>();
  } else if (v.is_object() && v.value("__type", "") == "AddedToken") {
    tok = token_from_object(v, where);
  } else {
    return std::nullopt;
  }
  tok.special = true;
  if (v.is_string()) tok.normalized = false;
  return tok;
}

}  // namespace

void AddedVocabulary::add(AddedToken token) {
  if (auto it = index_.find(token.content); it != index_.end()) {
    token.id = tokens_[it->second].id;
    tokens_[it->second] = token;
  } else {
    if (auto id = model_.token_to_id(token.content)) token.id = *id;
    else token.id = std::max(max_id_, model_.entry_count() - 1) + 1;
    index_[token.content] = tokens_.size();
    by_id_[token.id] = tokens_.size();
    tokens_.push_back(token);
  }
  max_id_ = std::max(max_id_, token.id);
  if (token.special) special_.insert(token.content);
}

void AddedVocabulary::add_from_json(const json& list, const std::string& file) {
  if (list.is_null()) return;
  if (!list.is_array()) fail(file, ": added_tokens: expected a list, found ", list.type_name());
  for (size_t i = 0; i < list.size(); i++) {
    const std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
    const json& t = list[i];
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0)
      fail(where, ".id: expected a non-negative token id, found ", t.is_object() ? t.value("id", json()).dump() : t.dump());
    add(token_from_object(t, where));
  }
}

void AddedVocabulary::add_from_config(const nlohmann::ordered_json& cfg, const std::string& file) {
  if (!cfg.is_object()) return;
  std::vector<AddedToken> to_add;
  auto pending = [&](const std::string& content) {
    return index_.count(content) ||
           std::any_of(to_add.begin(), to_add.end(), [&](const AddedToken& t) { return t.content == content; });
  };
  // added_tokens_decoder, by id: tokens that are new, or known with other flags.
  if (auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && it->is_object()) {
    std::vector<std::pair<long long, AddedToken>> entries;
    for (const auto& [key, t] : it->items()) {
      const std::string where = file + ": added_tokens_decoder[\"" + key + "\"]";
      long long id = 0;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        fail(where, ": the key is not a token id");
      }
      entries.emplace_back(id, token_from_object(plain(t), where));
    }
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [id, tok] : entries) {
      auto known = index_.find(tok.content);
      if (known == index_.end() || !same_flags(tokens_[known->second], tok)) to_add.push_back(tok);
    }
  }
  // Named special tokens that are not added tokens yet.
  std::vector<std::pair<std::string, nlohmann::ordered_json>> named;
  for (const char* key : kSpecialAttributes)
    if (auto it = cfg.find(key); it != cfg.end()) named.emplace_back(key, *it);
  for (const auto& item : cfg.items()) {  // model-specific ones, e.g. "image_token"
    const std::string& key = item.key();  // not a structured binding: the lambda names it (clang 14)
    const auto& v = item.value();
    const bool standard = std::any_of(std::begin(kSpecialAttributes), std::end(kSpecialAttributes),
                                      [&](const char* k) { return key == k; });
    if (!standard && key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0) named.emplace_back(key, v);
  }
  const nlohmann::ordered_json* extra = nullptr;
  if (auto it = cfg.find("extra_special_tokens"); it != cfg.end()) extra = &*it;
  else if (auto it2 = cfg.find("additional_special_tokens"); it2 != cfg.end()) extra = &*it2;
  if (extra && extra->is_object())
    for (const auto& [key, v] : extra->items()) named.emplace_back(key, v);
  if (extra && extra->is_array())
    for (const auto& v : *extra) named.emplace_back("extra_special_tokens", v);
  for (const auto& [key, v] : named) {
    auto tok = named_token(v, file + ": " + key);
    if (tok && !tok->content.empty() && !pending(tok->content)) to_add.push_back(*tok);
  }
  for (const AddedToken& t : to_add) add(t);
}

void AddedVocabulary::build(const Normalizer* normalizer) {
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (AddedToken tok : tokens_) {
    tok.special = special_.count(tok.content) > 0;  // HF's special set is by content
    if (tok.normalized) {
      // Normalized tokens are looked for in normalized text, so their pattern is normalized too.
      std::string pattern = tok.content;
      if (normalizer) normalizer->normalize(pattern);
      normalized_patterns.push_back(std::move(pattern));
      normalized.push_back(std::move(tok));
    } else {
      raw_patterns.push_back(tok.content);
      raw.push_back(std::move(tok));
    }
  }
  raw_ = AddedTokenMatcher(raw, raw_patterns);
  normalized_ = AddedTokenMatcher(normalized, normalized_patterns);
}

std::optional<int32_t> AddedVocabulary::id_of(std::string_view content) const {
  auto it = index_.find(std::string(content));
  if (it == index_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

const std::string* AddedVocabulary::content_of(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second].content;
}

bool AddedVocabulary::is_special(int32_t id) const {
  const std::string* content = content_of(id);
  return content && special_.count(*content) > 0;
}

}  // namespace tiller
