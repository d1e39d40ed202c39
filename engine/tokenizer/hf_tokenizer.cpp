// HF tokenizer.json tokenizers (byte-level and sentencepiece-style BPE) reproducing HF tokenizers
// + transformers: added tokens, normalizer, pre-tokenizer, BPE, post-processor and decoder.
#include <algorithm>

#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/hf_added_vocabulary.h"
#include "engine/tokenizer/hf_decoder.h"
#include "engine/tokenizer/hf_json.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/pretokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_factories.h"
#include "engine/tokenizer/tokenizer_config.h"
#include "engine/tokenizer/unicode.h"

namespace tiller {
namespace {

// The special ids the post-processor puts around a single sequence.
struct Template {
  std::vector<int32_t> prefix, suffix;
};

void parse_post_processor(const json& j, const std::string& where, Template& t) {
  if (j.is_null()) return;
  const std::string type = json_type(j, where);
  std::vector<int32_t> prefix, suffix;
  if (type == "ByteLevel") return;  // only trims offsets; ids are unchanged
  if (type == "Sequence") {
    const json& list = json_array(j, "processors", where);
    for (size_t i = 0; i < list.size(); i++)
      parse_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]", t);
    return;
  }
  if (type == "TemplateProcessing") {
    const json& single = json_array(j, "single", where);
    const json& specials = json_object(j, "special_tokens", where);
    bool seen_a = false;
    for (size_t i = 0; i < single.size(); i++) {
      const std::string at = where + ".single[" + std::to_string(i) + "]";
      const json& piece = single[i];
      if (piece.contains("Sequence")) {
        const std::string id = json_string(piece["Sequence"], "id", at + ".Sequence");
        if (id != "A") fail(at, ": a single-sequence template can only hold sequence A, found \"", id, "\"");
        seen_a = true;
      } else if (piece.contains("SpecialToken")) {
        const std::string name = json_string(piece["SpecialToken"], "id", at + ".SpecialToken");
        auto it = specials.find(name);
        if (it == specials.end())
          fail(at, ": special token \"", name, "\" is not listed in ", where, ".special_tokens");
        const json& ids = json_array(*it, "ids", where + ".special_tokens[\"" + name + "\"]");
        for (const json& id : ids) {
          if (!id.is_number_integer()) fail(where, ".special_tokens[\"", name, "\"].ids: expected token ids, found ", ids.dump());
          (seen_a ? suffix : prefix).push_back(id.get<int32_t>());
        }
      } else {
        fail(at, ": expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, found ", piece.dump());
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_of = [&](const char* key) {
      const json& pair = json_array(j, key, where);
      if (pair.size() != 2 || !pair[1].is_number_integer())
        fail(where, ".", key, ": expected [\"token\", id], found ", pair.dump());
      return pair[1].get<int32_t>();
    };
    prefix.push_back(id_of("cls"));
    suffix.push_back(id_of("sep"));
  } else {
    fail(where, ": post-processor type \"", type,
         "\" is not supported (tiller implements TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing "
         "and Sequence). Use a tokenizer.json with those, or add this type to engine/tokenizer/hf_tokenizer.cpp.");
  }
  // Each processor wraps what the previous ones produced.
  t.prefix.insert(t.prefix.begin(), prefix.begin(), prefix.end());
  t.suffix.insert(t.suffix.end(), suffix.begin(), suffix.end());
}

// transformers' clean_up_tokenization (decode with clean_up_tokenization_spaces).
std::string clean_up_tokenization(std::string s) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    std::string out;
    size_t prev = 0;
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, prev)) {
      out.append(s, prev, at - prev).append(to);
      prev = at + from.size();
    }
    out.append(s, prev);
    s.swap(out);
  }
  return s;
}

class HfTokenizer final : public Tokenizer {
 public:
  // `root` is a tokenizer.json document, `cfg` and `config` the tokenizer_config.json beside it
  // (parsed, and as JSON; null when there is none); `file` and `config_path` name them in errors.
  HfTokenizer(const json& root, const TokenizerConfig& cfg, const nlohmann::ordered_json& config,
              const std::string& file, const std::string& config_path) {
    if (!root.is_object()) fail(file, ": expected a JSON object (an HF tokenizers file), found ", root.type_name());

    const std::string model_where = file + ": model";
    const json& model = json_object(root, "model", file);
    // Files written by old tokenizers versions leave out the model type; BPE is the one with merges.
    const std::string type = model.contains("type") ? json_type(model, model_where)
                             : model.contains("merges") ? "BPE" : "(none)";
    if (type != "BPE")
      fail(model_where, ": model type \"", type,
           "\" is not supported (tiller implements BPE, used by Llama-3, Qwen2, Mistral and SmolLM2). "
           "WordPiece, WordLevel and Unigram tokenizers need their own model code.");
    model_ = std::make_unique<BpeModel>(model, model_where);

    normalizer_ = make_normalizer(root.value("normalizer", json()), file + ": normalizer");
    pre_tokenizer_ = make_pre_tokenizer(root.value("pre_tokenizer", json()), file + ": pre_tokenizer");
    decoder_ = make_decoder(root.value("decoder", json()), file + ": decoder");

    added_ = std::make_unique<AddedVocabulary>(*model_);
    added_->add_from_json(root.value("added_tokens", json()), file);
    added_->add_from_config(config, config_path);
    added_->build(normalizer_.get());
    vocab_size_ = std::max(model_->size(), added_->end_id());
    // The post-processor alone decides BOS/EOS: transformers >= 5 drops add_bos_token and
    // add_eos_token from tokenizer_config.json whenever a tokenizer.json is present
    // (tokenization_utils_base.py), and a file without a post-processor adds nothing.
    parse_post_processor(root.value("post_processor", json()), file + ": post_processor", template_);
    for (int32_t id : template_.prefix) check_id(id, "post_processor");
    for (int32_t id : template_.suffix) check_id(id, "post_processor");
    set_special_tokens(cfg);
    read_decode_settings(config);
  }

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    if (options.add_special) ids.insert(ids.end(), template_.prefix.begin(), template_.prefix.end());
    // Invalid UTF-8 is read as Python's bytes.decode("utf-8", errors="replace") reads it.
    std::vector<Segment> segments(1);
    segments[0].at_start = true;
    if (valid_utf8_prefix(text) == text.size()) segments[0].text = std::string(text);
    else segments[0].text = utf8_lossy(text);

    const bool match_special = options.parse_special && !split_special_tokens_;
    added_->split_raw(segments, match_special);
    if (normalizer_)
      for (Segment& s : segments)
        if (s.id < 0 && !normalizer_->normalize(s.text)) s.at_start = false;
    added_->split_normalized(segments, match_special);

    std::vector<Piece> pieces;
    for (Segment& s : segments) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      if (s.text.empty()) continue;
      pieces.clear();
      pieces.push_back({std::move(s.text), s.at_start});
      if (pre_tokenizer_) pre_tokenizer_->split(pieces);
      for (const Piece& p : pieces) model_->tokenize(p.text, ids);
    }
    if (options.add_special) ids.insert(ids.end(), template_.suffix.begin(), template_.suffix.end());
    return ids;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      check_id(id, "decode");
      if (const std::string* t = token_text(id, skip_special)) tokens.push_back(*t);
    }
    std::string text;
    if (decoder_) {
      decoder_->decode_chain(tokens);
      for (const auto& t : tokens) text += t;
    } else {
      for (size_t i = 0; i < tokens.size(); i++) text.append(i ? " " : "").append(tokens[i]);  // HF's default
    }
    return clean_up_ ? clean_up_tokenization(std::move(text)) : text;
  }

  void append_token_bytes(int32_t id, bool first, bool skip_special, std::string& out) const override {
    check_id(id, "append_token_bytes");
    const std::string* t = token_text(id, skip_special);
    if (!t) return;
    if (!decoder_) {
      if (!first) out += ' ';
      out += *t;
      return;
    }
    std::string bytes = *t;
    HfDecoder::StreamState state{first, false};
    decoder_->stream(bytes, state);
    out += bytes;
  }

  int32_t vocab_size() const override { return vocab_size_; }
  const SpecialTokens& special() const override { return special_; }
  bool is_special(int32_t id) const override { return added_->is_special(id); }
  std::optional<int32_t> token_id(std::string_view text) const override {
    if (auto id = added_->id_of(text)) return id;
    return model_->token_to_id(text);
  }

 private:
  void set_special_tokens(const TokenizerConfig& cfg) {
    auto lookup = [&](const std::string& text) -> std::optional<int32_t> {
      return text.empty() ? std::nullopt : token_id(text);
    };
    special_.bos = lookup(cfg.bos_token);
    special_.eos = lookup(cfg.eos_token);
    special_.pad = lookup(cfg.pad_token);
    special_.unk = cfg.unk_token.empty() ? model_->unk_id() : lookup(cfg.unk_token);
    // Without a tokenizer_config.json, the post-processor's tokens are the best evidence.
    if (!cfg.present && !special_.bos && !template_.prefix.empty()) special_.bos = template_.prefix.front();
    if (!cfg.present && !special_.eos && !template_.suffix.empty()) special_.eos = template_.suffix.back();
    auto text_of = [&](std::optional<int32_t> id) {
      const std::string* t = id ? token_text(*id, false) : nullptr;
      return t ? *t : std::string();
    };
    special_.bos_text = text_of(special_.bos);
    special_.eos_text = text_of(special_.eos);
    auto contains = [](const std::vector<int32_t>& v, std::optional<int32_t> id) {
      return id && std::find(v.begin(), v.end(), *id) != v.end();
    };
    special_.add_bos = contains(template_.prefix, special_.bos);
    special_.add_eos = contains(template_.suffix, special_.eos);
  }

  // Settings transformers reads from tokenizer_config.json that TokenizerConfig does not carry.
  void read_decode_settings(const nlohmann::ordered_json& cfg) {
    if (!cfg.is_object()) return;
    auto flag = [&](const char* key) {
      auto it = cfg.find(key);
      return it != cfg.end() && it->is_boolean() && it->get<bool>();
    };
    // transformers >= 5 skips the clean-up for BPE models (every model this file loads) unless
    // the config forces it, because it deletes real spaces before punctuation.
    clean_up_ = flag("clean_up_tokenization_spaces") &&
                flag("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output");
    split_special_tokens_ = flag("split_special_tokens");
  }

  // The string HF's decoder gets for `id`; nullptr when it is skipped or has no text.
  const std::string* token_text(int32_t id, bool skip_special) const {
    if (const std::string* content = added_->content_of(id)) {
      if (skip_special && added_->is_special(id)) return nullptr;
      return content;
    }
    const std::string& t = model_->id_to_token(id);
    return t.empty() ? nullptr : &t;
  }

  void check_id(int32_t id, const char* what) const {
    if (id < 0 || id >= vocab_size_)
      fail(what, ": token id ", id, " is outside the tokenizer's vocabulary [0, ", vocab_size_, ")");
  }

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<HfDecoder> decoder_;
  std::unique_ptr<AddedVocabulary> added_;
  Template template_;
  SpecialTokens special_;
  int32_t vocab_size_ = 0;
  bool clean_up_ = false;
  bool split_special_tokens_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "tokenizer.json";
  const json root = read_json_file(path);
  const TokenizerConfig cfg = read_tokenizer_config(model_dir);  // validates the file
  const auto config_path = model_dir / "tokenizer_config.json";
  const auto config = cfg.present ? nlohmann::ordered_json::parse(read_text_file(config_path)) : nlohmann::ordered_json();
  return std::make_unique<HfTokenizer>(root, cfg, config, path.string(), config_path.string());
}

std::unique_ptr<Tokenizer> make_hf_tokenizer(const json& tokenizer_json, const TokenizerConfig& config,
                                             const std::string& source) {
  return std::make_unique<HfTokenizer>(tokenizer_json, config, nlohmann::ordered_json(), source, source);
}

}  // namespace tiller
