// The evaluation dataset loaders (eval/dataset.h): byte 0 picks the kind, the rest is the file (or
// two files, for the sets that are folders) — CSV quirks (BOMs, CRLF, quotes, ragged rows), JSONL,
// JSON lists, MultiJail's Python-list tags. An accepted set is then described as summary.json
// records it and selected by language as tiller eval does.
#include <filesystem>
#include <set>

#include "eval/dataset.h"
#include "fuzz/fuzz_target.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {

// The folder a kind loads from, with the input written where that kind looks for it.
eval::DatasetSpec place(uint8_t kind, std::string_view a, std::string_view b) {
  const fs::path root = fuzz::scratch_dir() / "datasets";
  switch (kind % 8) {
    case 0:
      fs::create_directories(root / "multijail");
      fuzz::write_file(root / "multijail" / "MultiJail.csv", a);
      return {"multijail", root / "multijail"};
    case 1: {  // two languages, one category read from the input, the other 13 empty
      static const bool made = [&] {
        for (const char* lang : {"en", "bn"}) {
          fs::create_directories(root / "xsafety" / lang);
          for (const char* c : {"Crimes_And_Illegal_Activities", "Ethics_And_Morality", "Goal_Hijacking",
                                "Inquiry_With_Unsafe_Opinion", "Mental_Health", "Physical_Harm", "Privacy_And_Property",
                                "Prompt_Leaking", "Reverse_Exposure", "Role_Play_Instruction",
                                "Unfairness_And_Discrimination", "Unsafe_Instruction_Topic", "commonsense"})
            fuzz::write_file(root / "xsafety" / lang / (std::string(c) + ".csv"), "");
        }
        return true;
      }();
      (void)made;
      fuzz::write_file(root / "xsafety" / "en" / "Insult.csv", a);
      fuzz::write_file(root / "xsafety" / "bn" / "Insult_n.csv", b);
      return {"xsafety", root / "xsafety"};
    }
    case 2:
      fs::create_directories(root / "polyrefuse");
      fuzz::write_file(root / "polyrefuse" / "harmful_test_translated_bn.json", a);
      fuzz::write_file(root / "polyrefuse" / "harmless_test_translated_bn.json", b);
      return {"polyrefuse", root / "polyrefuse"};
    case 3: fuzz::write_file(root / "pku.jsonl", a); return {"pku-saferlhf", root / "pku.jsonl"};
    case 4: fuzz::write_file(root / "advbench.csv", a); return {"advbench", root / "advbench.csv"};
    case 5: fuzz::write_file(root / "harmbench.csv", a); return {"harmbench", root / "harmbench.csv"};
    case 6: fuzz::write_file(root / "questions.csv", a); return {"csv", root / "questions.csv"};
    default: fuzz::write_file(root / "prompts.jsonl", a); return {"jsonl", root / "prompts.jsonl"};
  }
}

}  // namespace

TILLER_FUZZ_TARGET(eval_dataset, "evaluation sets: MultiJail, XSafety, PolyRefuse, PKU-SafeRLHF, AdvBench, HarmBench, csv:, jsonl:") {
  if (data.empty()) return;
  fs::create_directories(fuzz::scratch_dir() / "datasets");
  const auto parts = fuzz::split_parts(data.substr(1), 2);
  const eval::DatasetSpec spec = place(uint8_t(data[0]), parts[0], parts[1]);
  eval::Dataset d;
  if (!fuzz::accepted([&] { d = eval::load_dataset(spec, {"xx"}); })) return;
  fuzz::fuzz_check(!d.items.empty() && !d.languages.empty() && !d.files.empty(), "an accepted set has items, languages, files");
  std::set<std::string> keys, languages(d.languages.begin(), d.languages.end());
  for (const eval::EvalItem& item : d.items) {
    fuzz::fuzz_check(keys.insert(item.key()).second, "item keys (id, language, split) are unique");
    fuzz::fuzz_check(languages.count(item.language) == 1, "every item's language is listed");
  }
  (void)d.describe().dump();  // as summary.json records it
  (void)eval::parallel_items(d, d.languages.back());
  eval::select_items(d, {d.languages.front()}, 1);
  fuzz::fuzz_check(!d.items.empty() && d.items.size() <= 2, "one item per split of the language selected");
}
