// sentencepiece tokenizer.model (Llama-2, Mistral v0.1, llama2.c models) through libsentencepiece.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <vector>

#include "engine/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_factories.h"
#include "engine/tokenizer/tokenizer_config.h"
#include "engine/tokenizer/unicode.h"

namespace tiller {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, sentencepiece's space

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `model_path` names a tokenizer.model file, or (with `serialized`) where the model came from.
  SentencePieceTokenizer(const std::string& model_path, const TokenizerConfig& cfg, const std::string* serialized) {
    const auto status = serialized ? sp_.LoadFromSerializedProto(*serialized) : sp_.Load(model_path);
    if (!status.ok()) {
      fail(model_path, ": not a sentencepiece model (", status.ToString(),
           serialized ? ")" : "). Llama-3 ships a tiktoken-format tokenizer.model: tiller needs that model's tokenizer.json.");
    }
    auto id_or_none = [&](int id) -> std::optional<int32_t> {
      if (id < 0 || id >= sp_.GetPieceSize()) return std::nullopt;
      return id;
    };
    special_.bos = id_or_none(sp_.bos_id());
    special_.eos = id_or_none(sp_.eos_id());
    special_.pad = id_or_none(sp_.pad_id());
    special_.unk = id_or_none(sp_.unk_id());
    // tokenizer_config.json names the tokens by text; it wins over the model's trainer spec.
    if (!cfg.bos_token.empty()) special_.bos = token_id(cfg.bos_token);
    if (!cfg.eos_token.empty()) special_.eos = token_id(cfg.eos_token);
    if (special_.bos) special_.bos_text = sp_.IdToPiece(*special_.bos);
    if (special_.eos) special_.eos_text = sp_.IdToPiece(*special_.eos);
    special_.add_bos = cfg.add_bos_token.value_or(true);  // LlamaTokenizer's defaults
    special_.add_eos = cfg.add_eos_token.value_or(false);

    for (int id = 0; id < sp_.GetPieceSize(); id++) {
      if (sp_.IsControl(id)) special_texts_.emplace_back(sp_.IdToPiece(id), id);
    }
    // Longest first, so "<|im_start|>" is not matched as "<|im".
    std::sort(special_texts_.begin(), special_texts_.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }

  std::vector<int32_t> encode(std::string_view raw, const EncodeOptions& options) const override {
    // Invalid UTF-8 becomes U+FFFD, one per maximal ill-formed subpart, as Python's
    // errors="replace" gives the reference tokenizers (which never see raw bytes).
    const std::string sanitized = utf8_lossy(raw);
    const std::string_view text = sanitized;
    std::vector<int32_t> ids;
    if (options.add_special && special_.add_bos && special_.bos) ids.push_back(*special_.bos);
    // With parse_special, special-token text splits the input; each text fragment is encoded on
    // its own (and so gets its own dummy-prefix space, as llama.cpp's SPM tokenizer does).
    size_t start = 0;
    while (start <= text.size()) {
      size_t match_at = text.size();
      int32_t match_id = -1;
      size_t match_len = 0;
      if (options.parse_special) {
        for (const auto& [piece, id] : special_texts_) {
          const size_t at = text.find(piece, start);
          if (at < match_at) match_at = at, match_id = id, match_len = piece.size();
        }
      }
      if (match_at > start) encode_fragment(text.substr(start, match_at - start), ids);
      if (match_id < 0) break;
      ids.push_back(match_id);
      start = match_at + match_len;
    }
    if (options.add_special && special_.add_eos && special_.eos) ids.push_back(*special_.eos);
    return ids;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    check_ids(ids);
    if (skip_special) {
      std::string text;
      sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
      return text;
    }
    // Keep control tokens as text: decode the runs between them.
    std::string text;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string part;
      sp_.Decode(run, &part);
      text += part;
      run.clear();
    };
    for (int32_t id : ids) {
      if (sp_.IsControl(id)) {
        flush();
        text += sp_.IdToPiece(id);
      } else {
        run.push_back(id);
      }
    }
    flush();
    return text;
  }

  void append_token_bytes(int32_t id, bool first, bool skip_special, std::string& out) const override {
    check_ids(std::span<const int32_t>(&id, 1));
    if (sp_.IsControl(id)) {
      if (!skip_special) out += sp_.IdToPiece(id);
      return;
    }
    const std::string piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) {  // "<0xAB>"
      out += char(std::stoi(piece.substr(3, 2), nullptr, 16));
      return;
    }
    if (sp_.IsUnknown(id)) {
      out += " \xE2\x81\x87 ";  // sentencepiece's default unk surface
      return;
    }
    std::string text;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
        text += ' ';
        i += kSpaceSymbol.size();
      } else {
        text += piece[i++];
      }
    }
    if (first && !text.empty() && text[0] == ' ') text.erase(0, 1);  // the dummy-prefix space
    out += text;
  }

  // libsentencepiece's decoder treats control tokens as invisible, shown or not.
  bool ends_first(int32_t id, bool) const override { return !sp_.IsControl(id); }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }
  const SpecialTokens& special() const override { return special_; }
  bool is_special(int32_t id) const override { return id >= 0 && id < vocab_size() && sp_.IsControl(id); }

  std::optional<int32_t> token_id(std::string_view text) const override {
    const int id = sp_.PieceToId(std::string(text));
    if (id == sp_.unk_id() && text != sp_.IdToPiece(sp_.unk_id())) return std::nullopt;
    return id;
  }

 private:
  void encode_fragment(std::string_view text, std::vector<int32_t>& ids) const {
    std::vector<int> out;
    const auto status = sp_.Encode(std::string(text), &out);
    if (!status.ok()) fail("sentencepiece could not encode the text: ", status.ToString());
    ids.insert(ids.end(), out.begin(), out.end());
  }

  void check_ids(std::span<const int32_t> ids) const {
    for (int32_t id : ids) {
      if (id < 0 || id >= sp_.GetPieceSize())
        fail("token id ", id, " is outside the tokenizer's vocabulary [0, ", sp_.GetPieceSize(), ")");
    }
  }

  sentencepiece::SentencePieceProcessor sp_;
  SpecialTokens special_;
  std::vector<std::pair<std::string, int32_t>> special_texts_;  // control pieces (user-defined ones sentencepiece matches itself)
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& model_dir) {
  return std::make_unique<SentencePieceTokenizer>((model_dir / "tokenizer.model").string(),
                                                  read_tokenizer_config(model_dir), nullptr);
}

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& serialized_model, const TokenizerConfig& config,
                                                        const std::string& source) {
  return std::make_unique<SentencePieceTokenizer>(source, config, &serialized_model);
}

}  // namespace tiller
