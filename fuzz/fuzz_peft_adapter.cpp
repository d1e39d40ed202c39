// PEFT LoRA adapter folders: adapter_config.json (peft_type, r, lora_alpha, rank_pattern and
// alpha_pattern regexes, the options tiller refuses) and adapter_model.safetensors (PEFT's tensor
// names); then fitting a model, densifying, and a write-and-read round trip.
#include <filesystem>

#include "fuzz/fuzz_target.h"
#include "fuzz/steering_checks.h"
#include "steering/peft_adapter.h"

using namespace tiller;

TILLER_FUZZ_TARGET(peft_adapter, "a PEFT LoRA adapter folder: adapter_config.json + adapter_model.safetensors") {
  const auto parts = fuzz::split_parts(data, 2);
  const auto dir = fuzz::scratch_dir() / "adapter";
  std::filesystem::create_directories(dir);
  fuzz::write_file(dir / "adapter_config.json", parts[0]);
  fuzz::write_file(dir / "adapter_model.safetensors", parts[1]);
  Profile p;
  if (!fuzz::accepted([&] { p = read_profile(dir); })) return;  // read_profile sends a folder to read_peft_adapter
  fuzz::fuzz_check(p.manifest.method == "peft", "an adapter folder reads as a PEFT profile");
  for (const WeightDelta& d : p.deltas) fuzz::fuzz_check(d.kind == DeltaKind::LowRank, "an adapter holds LoRA deltas only");
  fuzz::check_profile(p, [](const Profile& profile) {
    const auto again = fuzz::scratch_dir() / "adapter-again";
    write_peft_adapter(profile, again, "fuzz");
    return read_peft_adapter(again);
  });
}
