// safetensors files: the header length, the JSON header, every entry's dtype, shape and
// offsets against the file, then each readable tensor's bytes (so a view outside the mapping
// would be a sanitizer report, not a silent read).
#include "engine/safetensors.h"
#include "fuzz/fuzz_target.h"

using namespace tiller;

TILLER_FUZZ_TARGET(safetensors, "a safetensors file: header, dtypes, shapes, offsets, tensor views") {
  const auto path = fuzz::scratch_dir() / "model.safetensors";
  fuzz::write_file(path, data);
  std::shared_ptr<SafetensorsFile> file;
  if (!fuzz::accepted([&] { file = SafetensorsFile::open(path); })) return;
  for (const auto& entry : file->tensors()) {
    const TensorInfo& info = entry.second;
    fuzz::fuzz_check(info.offset + info.nbytes <= data.size(), "tensor bytes lie inside the file");
    fuzz::fuzz_check(info.offset >= 8, "tensor bytes start after the header length");
    Tensor t;
    if (!fuzz::accepted([&] { t = file->view(info); })) continue;
    fuzz::fuzz_check(t.nbytes() == info.nbytes, "a view covers exactly the entry's bytes");
    const auto* bytes = t.ptr<const uint8_t>();
    unsigned sum = 0;
    for (size_t i = 0; i < t.nbytes(); i++) sum += bytes[i];
    fuzz::fuzz_check(sum <= 255 * t.nbytes(), "reading the view");
  }
}
