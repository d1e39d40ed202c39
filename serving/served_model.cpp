// The served model's description and token-text helpers.
#include "serving/served_model.h"

#include <chrono>
#include <cstdio>

#include "engine/tokenizer/tokenizer_config.h"

namespace tiller::serving {

ServedModel describe_model(const Model& model, const Tokenizer* tokenizer, const std::filesystem::path& dir,
                           std::string name, int64_t ctx, const std::string& chat_template_choice) {
  ServedModel m = describe_model_files(model.config(), tokenizer, dir, std::move(name), ctx, chat_template_choice);
  m.model = &model;
  return m;
}

ServedModel describe_model_files(const ModelConfig& model_config, const Tokenizer* tokenizer, const std::filesystem::path& dir,
                                 std::string name, int64_t ctx, const std::string& chat_template_choice) {
  ServedModel m;
  m.name = std::move(name);
  m.tokenizer = tokenizer;
  m.defaults = load_generation_config(dir);
  m.eos_ids = m.defaults.eos_token_ids.empty() ? model_config.eos_token_ids : m.defaults.eos_token_ids;
  m.ctx = ctx;
  m.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!tokenizer) {
    m.chat_template_error = "the model folder has no tokenizer, so chat messages cannot be encoded; use /v1/completions "
                            "with token-id prompts";
    return m;
  }
  const TokenizerConfig config = read_tokenizer_config(dir);
  try {
    m.chat_template = ChatTemplate::select(config, chat_template_choice, tokenizer);
    m.chat_options = chat_options_for(config);
    m.chat_options.add_generation_prompt = true;
  } catch (const Error& e) {  // completions still work; chat requests get this message
    m.chat_template_error = std::string("the model has no usable chat template: ") + e.what();
  }
  return m;
}

std::optional<int32_t> ServedModel::find_profile(const std::string& profile) const {
  for (size_t i = 0; i < profiles.size(); i++) {
    if (profiles[i].name == profile) return int32_t(i + 1);
  }
  return std::nullopt;
}

std::string ServedModel::token_bytes(int32_t id) const {
  if (!tokenizer) return std::to_string(id);
  std::string out;
  tokenizer->append_token_bytes(id, false, false, out);
  return out;
}

std::string ServedModel::decode(std::span<const int32_t> ids) const {
  if (tokenizer) return tokenizer->decode(ids);
  std::string out;
  for (size_t i = 0; i < ids.size(); i++) out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

size_t invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < n; k++) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += n;
  }
  return std::string_view::npos;
}

std::string token_text(const std::string& bytes) {
  if (invalid_utf8_at(bytes) == std::string_view::npos) return bytes;
  std::string out = "bytes:";
  char buf[8];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  }
  return out;
}

}  // namespace tiller::serving
