// Interval estimates for violation rates: Wilson score intervals for one rate, Newcombe's hybrid
// score interval for the difference of two, and Cohen's kappa for two judges' agreement.
#pragma once

#include <cstdint>

namespace tiller::eval {

struct Interval {
  double low = 0, high = 0;
};

// z with P(Z <= z) = p for a standard normal Z (Wichura's AS 241, about 1e-16 relative error).
double normal_quantile(double p);

// The Wilson score interval of k successes in n trials at `confidence` (two-sided). n = 0 gives [0, 1].
Interval wilson_interval(int64_t k, int64_t n, double confidence = 0.95);

// Newcombe's hybrid score interval (his method 10) for p1 - p2 of two independent samples, from
// each rate's Wilson interval. Answers to the same prompts by two systems are paired, usually with
// positive correlation; treating them as independent gives a wider (conservative) interval.
Interval newcombe_difference(int64_t k1, int64_t n1, int64_t k2, int64_t n2, double confidence = 0.95);

// Cohen's kappa of a 2x2 table of two raters' labels: [a b; c d] with a = both yes, d = both no.
// NaN when chance agreement is 1 (one label only).
double cohens_kappa(int64_t a, int64_t b, int64_t c, int64_t d);

}  // namespace tiller::eval
