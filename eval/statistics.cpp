// The formulas, from their papers: Wilson (1927), Newcombe (1998, method 10), Cohen (1960),
// and Wichura's AS 241 (1988) for the normal quantile.
#include "eval/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"

namespace tiller::eval {

namespace {

double poly(const double* c, int n, double x) {
  double r = c[n - 1];
  for (int i = n - 2; i >= 0; i--) r = r * x + c[i];
  return r;
}

}  // namespace

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) fail("normal_quantile: p must be in (0, 1), found ", p);
  static const double a[] = {3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3,
                             1.3731693765509461125e+4, 4.5921953931549871457e+4, 6.7265770927008700853e+4,
                             3.3430575583588128105e+4, 2.5090809287301226727e+3};
  static const double b[] = {1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
                             2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4,
                             5.2264952788528545610e+3};
  static const double c[] = {1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
                             3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
                             2.27238449892691845833e-2, 7.74545014278341407640e-4};
  static const double d[] = {1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
                             1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
                             1.05075007164441684324e-9};
  static const double e[] = {6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
                             2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
                             2.71155556874348757815e-5, 2.01033439929228813265e-7};
  static const double f[] = {1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
                             7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
                             2.04426310338993978564e-15};
  const double q = p - 0.5;
  if (std::abs(q) <= 0.425) {
    const double r = 0.180625 - q * q;
    return q * poly(a, 8, r) / poly(b, 8, r);
  }
  double r = std::sqrt(-std::log(q < 0 ? p : 1 - p));
  double z;
  if (r <= 5) {
    r -= 1.6;
    z = poly(c, 8, r) / poly(d, 8, r);
  } else {
    r -= 5;
    z = poly(e, 8, r) / poly(f, 8, r);
  }
  return q < 0 ? -z : z;
}

Interval wilson_interval(int64_t k, int64_t n, double confidence) {
  if (k < 0 || n < 0 || k > n) fail("wilson_interval: expected 0 <= k <= n, found k = ", k, ", n = ", n);
  if (!(confidence > 0 && confidence < 1)) fail("wilson_interval: confidence must be in (0, 1), found ", confidence);
  if (n == 0) return {0, 1};
  const double z = normal_quantile(1 - (1 - confidence) / 2), z2 = z * z;
  const double nn = double(n), p = double(k) / nn;
  const double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = z / (1 + z2 / nn) * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

Interval newcombe_difference(int64_t k1, int64_t n1, int64_t k2, int64_t n2, double confidence) {
  if (n1 == 0 || n2 == 0) return {-1, 1};
  const double p1 = double(k1) / double(n1), p2 = double(k2) / double(n2), d = p1 - p2;
  const Interval w1 = wilson_interval(k1, n1, confidence), w2 = wilson_interval(k2, n2, confidence);
  return {d - std::sqrt((p1 - w1.low) * (p1 - w1.low) + (w2.high - p2) * (w2.high - p2)),
          d + std::sqrt((w1.high - p1) * (w1.high - p1) + (p2 - w2.low) * (p2 - w2.low))};
}

double cohens_kappa(int64_t a, int64_t b, int64_t c, int64_t d) {
  const double n = double(a + b + c + d);
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  const double po = double(a + d) / n;
  const double pe = (double(a + b) * double(a + c) + double(c + d) * double(b + d)) / (n * n);
  if (pe >= 1) return std::numeric_limits<double>::quiet_NaN();
  return (po - pe) / (1 - pe);
}

}  // namespace tiller::eval
