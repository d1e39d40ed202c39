// Rotary frequencies: transformers' modeling_rope_utils, transcribed in F32.
#include "models/rope.h"

#include <cmath>

#include "engine/error.h"

namespace tiller {

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  const RopeConfig& r = config.rope;
  const float base = float(r.theta);
  std::vector<float> inv(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; i++) {
    const float exponent = float(2 * i) / float(dim);
    inv[size_t(i)] = 1.0f / std::pow(base, exponent);
  }
  switch (r.type) {
    case RopeConfig::Type::Default:
      break;
    case RopeConfig::Type::Linear:
      for (auto& f : inv) f /= float(r.factor);
      break;
    case RopeConfig::Type::Llama3: {
      // Long wavelengths are slowed by `factor`, short ones kept, and the band between the two
      // wavelength limits interpolated.
      const float factor = float(r.factor);
      const float low = float(r.low_freq_factor), high = float(r.high_freq_factor);
      const float old_len = float(r.original_max_position);
      const float low_freq_wavelen = old_len / low;
      const float high_freq_wavelen = old_len / high;
      for (auto& f : inv) {
        const float wavelen = float(2 * M_PI) / f;
        if (wavelen > low_freq_wavelen) {
          f = f / factor;
        } else if (!(wavelen < high_freq_wavelen)) {
          const float smooth = (old_len / wavelen - low) / (high - low);
          f = (1 - smooth) * f / factor + smooth * f;
        }
      }
      break;
    }
  }
  if (!r.freq_factors.empty()) {
    TILLER_CHECK(r.freq_factors.size() == inv.size(), "rope frequency factors: ", r.freq_factors.size(), " for ",
                 inv.size(), " frequencies");
    for (size_t i = 0; i < inv.size(); i++) inv[i] /= r.freq_factors[i];
  }
  return inv;
}

}  // namespace tiller
