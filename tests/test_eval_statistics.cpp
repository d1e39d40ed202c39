// Wilson and Newcombe intervals, Cohen's kappa and the normal quantile against scipy/statsmodels
// numbers (tests/fixtures/make_eval_stats.py wrote tests/fixtures/eval/stats.json).
#include <doctest/doctest.h>

#include "engine/json_file.h"
#include "eval/statistics.h"
#include "test_util.h"

using namespace tiller;
using namespace tiller::eval;

namespace {
json stats_fixture() { return read_json_file(test::fixtures_dir() / "eval" / "stats.json"); }
}  // namespace

TEST_CASE("statistics: normal quantile matches scipy.stats.norm.ppf") {
  const json fixture = stats_fixture();
  for (const auto& q : fixture["normal_quantile"]) {
    const double p = q["p"], z = q["z"];
    CHECK_MESSAGE(normal_quantile(p) == doctest::Approx(z).epsilon(1e-12), "p = " << p);
  }
  CHECK_THROWS(normal_quantile(0));
}

TEST_CASE("statistics: Wilson intervals match statsmodels proportion_confint(method='wilson')") {
  int n_cases = 0;
  const json fixture = stats_fixture();
  for (const auto& w : fixture["wilson"]) {
    const Interval iv = wilson_interval(w["k"], w["n"], w["confidence"]);
    INFO("k = " << w["k"] << ", n = " << w["n"] << ", confidence = " << w["confidence"]);
    CHECK(iv.low == doctest::Approx(w["low"].get<double>()).epsilon(1e-12));
    CHECK(iv.high == doctest::Approx(w["high"].get<double>()).epsilon(1e-12));
    n_cases++;
  }
  CHECK(n_cases > 50);
  CHECK(wilson_interval(0, 0).low == 0);
  CHECK(wilson_interval(0, 0).high == 1);
  CHECK_THROWS(wilson_interval(3, 2));
}

TEST_CASE("statistics: Newcombe difference interval matches statsmodels confint_proportions_2indep(method='newcomb')") {
  const json fixture = stats_fixture();
  for (const auto& d : fixture["difference"]) {
    const Interval iv = newcombe_difference(d["k1"], d["n1"], d["k2"], d["n2"], d["confidence"]);
    INFO(d.dump());
    CHECK(iv.low == doctest::Approx(d["low"].get<double>()).epsilon(1e-12));
    CHECK(iv.high == doctest::Approx(d["high"].get<double>()).epsilon(1e-12));
  }
}

TEST_CASE("statistics: Cohen's kappa matches statsmodels cohens_kappa") {
  const json fixture = stats_fixture();
  for (const auto& k : fixture["kappa"]) {
    const auto& t = k["table"];
    CHECK_MESSAGE(cohens_kappa(t[0][0], t[0][1], t[1][0], t[1][1]) == doctest::Approx(k["kappa"].get<double>()).epsilon(1e-12),
                  t.dump());
  }
}
