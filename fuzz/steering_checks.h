// What the steering-profile targets check of a profile that was read: it fits a small model or is
// refused with an Error; once it fits, its deltas densify within their shapes; and writing it back
// and reading it again gives the same deltas.
#pragma once

#include <functional>

#include "steering/profile.h"

namespace tiller::fuzz {

// A 2-layer Llama small enough to densify any delta on it: D 8, 2 heads of 4 (1 KV head),
// intermediate 16, vocabulary 32.
const ModelConfig& tiny_steering_config();

// Checks `profile` against tiny_steering_config() and, when it fits, densifies every delta;
// `reread` writes the profile in its own format and returns what reading that gives.
void check_profile(const Profile& profile, const std::function<Profile(const Profile&)>& reread);

}  // namespace tiller::fuzz
