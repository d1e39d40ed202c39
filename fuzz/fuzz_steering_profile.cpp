// Steering-profile files (docs/profile-format.md): the safetensors container, the tiller_profile
// manifest, each delta's name, kind, dtype and shape; then fitting a model, densifying, and a
// write-and-read round trip (fuzz/steering_checks.h).
#include "fuzz/fuzz_target.h"
#include "fuzz/steering_checks.h"
#include "steering/profile.h"

using namespace tiller;

TILLER_FUZZ_TARGET(steering_profile, "a steering-profile file: manifest, delta names, kinds, shapes; fit, densify, round trip") {
  const auto path = fuzz::scratch_dir() / "profile.safetensors";
  fuzz::write_file(path, data);
  Profile p;
  if (!fuzz::accepted([&] { p = read_profile(path); })) return;
  fuzz::check_profile(p, [](const Profile& profile) {
    const auto again = fuzz::scratch_dir() / "again.safetensors";
    write_profile(profile, again);
    return read_profile(again);
  });
}
