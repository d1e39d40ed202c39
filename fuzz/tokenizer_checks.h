// What every loaded tokenizer must do with any text: ids inside its vocabulary, decoding and
// streaming decoding that never fail and always give valid UTF-8.
#pragma once

#include <string_view>

#include "engine/tokenizer/tokenizer.h"

namespace tiller::fuzz {

void check_round_trip(const Tokenizer& tokenizer, std::string_view text);

}  // namespace tiller::fuzz
