// Resolving a request's profile: explicit names first, then the language router, then the default.
#include "serving/profile_routing.h"

#include "serving/openai_request.h"

namespace tiller::serving {

namespace {

std::string available(const ServedModel& m) {
  std::string s = "'" + m.name + "'";
  for (const auto& p : m.profiles) s += ", '" + p.name + "'";
  return s;
}

}  // namespace

ProfileChoice choose_profile(const ojson& body, std::string_view user_text, const ServedModel& m) {
  ProfileChoice c;
  c.model = m.name;
  std::optional<int32_t> named;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) throw ApiError(400, "'model' must be a string, found " + it->dump(), "model");
    const std::string name = it->get<std::string>();
    if (name != m.name) {
      named = m.find_profile(name);
      if (!named)
        throw ApiError(404, "The model '" + name + "' does not exist; this server serves " + available(m), "model",
                       "invalid_request_error", "model_not_found");
    }
    c.model = name;
  }
  if (auto it = body.find("profile"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) throw ApiError(400, "'profile' must be a string, found " + it->dump(), "profile");
    const std::string name = it->get<std::string>();
    const std::optional<int32_t> p = name == "base" ? std::optional<int32_t>(0) : m.find_profile(name);
    if (!p)
      throw ApiError(404, "The profile '" + name + "' does not exist; this server serves " + available(m) + " ('base': no profile)",
                     "profile", "invalid_request_error", "model_not_found");
    if (named && *named != *p)
      throw ApiError(400, "'model' names profile '" + c.model + "' but 'profile' names '" + name + "'; give one", "profile");
    named = p;
  }
  if (named) {
    c.adapter = *named;
    c.reason = "requested";
  } else if (m.router) {
    if (const auto guess = m.router->detect(user_text)) {
      c.language = guess->language;
      auto route = m.routes.find(guess->language);
      c.adapter = route != m.routes.end() ? route->second : m.default_adapter;
      c.reason = guess->method;
    } else {
      c.adapter = m.default_adapter;
      c.reason = "default";
    }
  } else {
    c.adapter = m.default_adapter;
    c.reason = "default";
  }
  c.profile = m.profile_name(c.adapter);
  return c;
}

}  // namespace tiller::serving
