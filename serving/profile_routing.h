// Which steering profile a request gets. In order: the profile its "model" names (vLLM's
// convention for adapters), or its "profile" field ("base" for none); else the profile routed to
// the detected language of its user text (serve --route-by-language); else the default profile.
#pragma once

#include <string>
#include <string_view>

#include "serving/served_model.h"
#include "engine/json_file.h"

namespace tiller::serving {

struct ProfileChoice {
  int32_t adapter = 0;        // 0: the base model
  std::string profile = "base";
  std::string model;          // the id the response reports: what the request named, else the served name
  std::string language;       // detected language ("" when not routed or undetected)
  std::string reason;         // "requested", "script", "cld2", "default"
};

// Throws ApiError 404 (OpenAI's model_not_found) for an unknown model or profile name, 400 when
// "model" and "profile" name different profiles.
ProfileChoice choose_profile(const nlohmann::ordered_json& body, std::string_view user_text, const ServedModel& model);

}  // namespace tiller::serving
