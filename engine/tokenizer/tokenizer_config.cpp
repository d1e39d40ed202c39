// Reads tokenizer_config.json (and chat_template.jinja) as HF's tokenizer loading does.
#include "engine/tokenizer/tokenizer_config.h"

#include "engine/error.h"
#include "engine/gguf.h"
#include "engine/json_file.h"

namespace tiller {
namespace {

// Special tokens appear as a plain string or as an AddedToken object {"content": ...}.
std::string token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return {};
}

std::optional<bool> optional_bool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) fail("tokenizer_config.json: \"", key, "\" must be true or false, found ", it->dump());
  return it->get<bool>();
}

}  // namespace

TokenizerConfig gguf_tokenizer_config(const GgufFile& f) {
  TokenizerConfig cfg;
  cfg.present = true;
  const std::string model = f.get_string("tokenizer.ggml.model").value_or("");
  const std::string pre = f.get_string("tokenizer.ggml.pre").value_or("default");
  const GgufValue* tokens = f.get_string_array("tokenizer.ggml.tokens");
  const GgufValue* types = f.get_number_array("tokenizer.ggml.token_type");
  const uint64_t n = tokens ? tokens->count : 0;
  if (types && types->count != n)
    fail(f.path().string(), ": tokenizer.ggml.token_type has ", types->count, " entries for ", n, " tokens");
  auto text = [&](const char* key) -> std::string {
    const auto id = f.get_uint(key);
    if (!id) return {};
    if (*id >= n) fail(f.path().string(), ": ", key, " = ", *id, " is outside the vocabulary [0, ", n, ")");
    return std::string(tokens->strings[size_t(*id)]);
  };
  cfg.bos_token = text("tokenizer.ggml.bos_token_id");
  cfg.eos_token = text("tokenizer.ggml.eos_token_id");
  cfg.pad_token = text("tokenizer.ggml.padding_token_id");
  cfg.unk_token = text("tokenizer.ggml.unknown_token_id");
  // llama.cpp's defaults: sentencepiece models and the Llama-3 / Tekken BPE vocabularies add BOS.
  const bool bos_default = model == "llama" || pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" ||
                           pre == "falcon3" || pre == "pixtral" || pre == "tekken";
  cfg.add_bos_token = f.get_bool("tokenizer.ggml.add_bos_token").value_or(bos_default);
  cfg.add_eos_token = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  cfg.tokenizer_class = model == "llama" ? "LlamaTokenizer" : "PreTrainedTokenizerFast";
  for (uint64_t i = 0; types && i < n; i++) {
    const int64_t type = types->integer_at(i);
    if (type != 3 && type != 4) continue;  // CONTROL, USER_DEFINED
    AddedTokenInfo info;
    info.content = std::string(tokens->strings[size_t(i)]);
    info.special = type == 3;
    cfg.added_tokens[int32_t(i)] = std::move(info);
  }
  cfg.chat_template = f.get_string("tokenizer.chat_template").value_or("");
  if (const GgufValue* names = f.get_string_array("tokenizer.chat_templates")) {
    for (std::string_view name : names->strings) {
      const std::string key = "tokenizer.chat_template." + std::string(name);
      if (const auto t = f.get_string(key)) cfg.named_chat_templates[std::string(name)] = *t;
    }
  }
  if (const auto ctx = f.get_uint(f.get_string("general.architecture").value_or("") + ".context_length"))
    cfg.model_max_length = int64_t(*ctx);
  return cfg;
}

TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir) {
  if (is_gguf_file(dir)) return gguf_tokenizer_config(*GgufFile::open(dir));
  TokenizerConfig cfg;
  const auto path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(path)) {
    const json j = read_json_file(path);
    if (!j.is_object()) fail(path.string(), ": expected a JSON object, found ", j.type_name());
    cfg.present = true;
    cfg.add_bos_token = optional_bool(j, "add_bos_token");
    cfg.add_eos_token = optional_bool(j, "add_eos_token");
    if (j.contains("bos_token")) cfg.bos_token = token_text(j["bos_token"]);
    if (j.contains("eos_token")) cfg.eos_token = token_text(j["eos_token"]);
    if (j.contains("pad_token")) cfg.pad_token = token_text(j["pad_token"]);
    if (j.contains("unk_token")) cfg.unk_token = token_text(j["unk_token"]);
    if (j.contains("tokenizer_class") && j["tokenizer_class"].is_string())
      cfg.tokenizer_class = j["tokenizer_class"].get<std::string>();
    if (auto it = j.find("model_max_length"); it != j.end() && it->is_number_integer())
      cfg.model_max_length = it->get<int64_t>();

    if (auto it = j.find("added_tokens_decoder"); it != j.end() && it->is_object()) {
      for (const auto& [key, tok] : it->items()) {
        int32_t id = 0;
        try {
          id = std::stoi(key);
        } catch (const std::exception&) {
          fail(path.string(), ": added_tokens_decoder key \"", key, "\" is not a token id");
        }
        AddedTokenInfo info;
        info.content = token_text(tok);
        info.special = tok.value("special", false);
        info.lstrip = tok.value("lstrip", false);
        info.rstrip = tok.value("rstrip", false);
        info.normalized = tok.value("normalized", false);
        info.single_word = tok.value("single_word", false);
        cfg.added_tokens[id] = std::move(info);
      }
    }

    if (auto it = j.find("chat_template"); it != j.end()) {
      if (it->is_string()) {
        cfg.chat_template = it->get<std::string>();
      } else if (it->is_array()) {
        for (const auto& entry : *it) {
          if (!entry.is_object() || !entry.contains("name") || !entry.contains("template"))
            fail(path.string(), ": chat_template list entries must be {\"name\", \"template\"}, found ",
                 entry.dump());
          const auto name = entry["name"].get<std::string>();
          const auto tmpl = entry["template"].get<std::string>();
          if (name == "default") cfg.chat_template = tmpl;
          else cfg.named_chat_templates[name] = tmpl;
        }
      } else if (!it->is_null()) {
        fail(path.string(), ": chat_template must be a string or a list, found ", it->type_name());
      }
    }
  }
  // Newer HF folders keep the template in its own file; it wins over an absent inline one.
  const auto jinja = dir / "chat_template.jinja";
  if (cfg.chat_template.empty() && std::filesystem::exists(jinja)) cfg.chat_template = read_text_file(jinja);
  return cfg;
}

}  // namespace tiller
