// The safety-space metrics against numpy / scikit-learn (tests/fixtures/probe): every case is
// run with the states held, folded row by row into the streamed scatter, and a mixture, and with
// the dense and the Lanczos eigensolver, and must give the reference's numbers each time.
#include <cmath>
#include <fstream>
#include <random>

#include "engine/error.h"
#include "engine/json_file.h"
#include "eval/probe_stats.h"
#include "test_util.h"

using namespace tiller;
using namespace tiller::eval;

namespace {

std::vector<std::vector<float>> rows_of(const json& m) {
  std::vector<std::vector<float>> out;
  for (const auto& r : m) out.push_back(r.get<std::vector<float>>());
  return out;
}

ClassStates fill(const std::vector<std::vector<float>>& rows, int64_t hold, int64_t cap, uint64_t seed) {
  ClassStates s(int64_t(rows[0].size()), hold);
  const std::vector<uint8_t> keep = silhouette_sample(int64_t(rows.size()), cap, seed);
  for (size_t i = 0; i < rows.size(); i++) s.add(rows[i].data(), keep[i]);
  return s;
}

bool close(double got, double want, double rtol, double atol) { return std::abs(got - want) <= atol + rtol * std::abs(want); }

}  // namespace

TEST_CASE("probe metrics: between-class ratio, Bhattacharyya and silhouette equal numpy / scikit-learn") {
  const json doc = read_json_file(test::fixtures_dir() / "probe" / "separation_reference.json");
  REQUIRE(doc["cases"].size() >= 6);
  for (const auto& c : doc["cases"]) {
    const auto harmful = rows_of(c["harmful"]), harmless = rows_of(c["harmless"]);
    const json& e = c["expected"];
    const int64_t D = int64_t(harmful[0].size());
    for (int64_t hold : {int64_t(-1), int64_t(1), int64_t(7)}) {
      for (int64_t dense_limit : {int64_t(1024), int64_t(0)}) {
        CAPTURE(c["name"].get<std::string>());
        CAPTURE(hold);
        CAPTURE(dense_limit);
        SeparationOptions opt;
        opt.components = c["k"];
        opt.ridge = c["ridge"];
        opt.dense_limit = dense_limit;
        const int64_t cap = c["cap"];
        const uint64_t seed = c["seed"];
        const ClassStates a = fill(harmful, hold, cap, seed), b = fill(harmless, hold, cap, seed);
        CHECK(a.count() == int64_t(harmful.size()));
        const Separation s = separation(a, b, opt);
        CHECK(s.n_harmful == int64_t(harmful.size()));
        CHECK(s.n_harmless == int64_t(harmless.size()));
        CHECK(close(s.between_class_ratio, e["between_class_ratio"], 1e-7, 1e-10));
        CHECK(close(s.bhattacharyya, e["bhattacharyya"], 1e-6, 1e-9));
        CHECK(close(s.silhouette, e["silhouette"], 1e-7, 1e-10));
        CHECK(close(s.ridge, e["ridge"], 1e-7, 0));
        CHECK(close(s.explained_variance, e["explained_variance"], 1e-8, 1e-12));
        REQUIRE(s.silhouette_points == e["silhouette_points"].get<int64_t>());
        // The scatter picture: the subsample's first two PCA coordinates, signs fixed alike.
        const json& pc2 = e["pc2"];
        double scale = 0, worst = 0;
        for (size_t i = 0; i < pc2.size(); i++) {
          for (int j = 0; j < 2; j++) {
            scale = std::max(scale, std::abs(pc2[i][j].get<double>()));
            worst = std::max(worst, std::abs(s.pc2[i * 2 + j] - pc2[i][j].get<double>()));
          }
        }
        CHECK(worst <= 1e-5 * scale);
        CHECK(std::count(s.pc2_harmful.begin(), s.pc2_harmful.end(), 1) == std::min<int64_t>(cap, int64_t(harmful.size())));
        (void)D;
      }
    }
  }
}

TEST_CASE("probe metrics: the Lanczos path equals the dense path on a wide layer") {
  const int64_t D = 300;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> row(static_cast<size_t>(D));
  ClassStates a(D), b(D), a_folded(D, 1), b_folded(D, 1);
  const auto keep = silhouette_sample(120, 40, 3);
  for (int i = 0; i < 120; i++) {
    for (int64_t j = 0; j < D; j++) row[size_t(j)] = normal(rng) * (1.0f + 3.0f / float(1 + j)) + (j < 4 ? 2.0f : 0.0f);
    a.add(row.data(), keep[size_t(i)]);
    a_folded.add(row.data(), keep[size_t(i)]);
    for (int64_t j = 0; j < D; j++) row[size_t(j)] = normal(rng) * (1.0f + 3.0f / float(1 + j));
    b.add(row.data(), keep[size_t(i)]);
    b_folded.add(row.data(), keep[size_t(i)]);
  }
  SeparationOptions dense, lanczos;
  lanczos.dense_limit = 0;
  const Separation x = separation(a, b, dense), y = separation(a, b, lanczos), z = separation(a_folded, b_folded, lanczos);
  for (const Separation* s : {&y, &z}) {
    CHECK(close(s->between_class_ratio, x.between_class_ratio, 1e-8, 0));
    CHECK(close(s->bhattacharyya, x.bhattacharyya, 1e-7, 0));
    CHECK(close(s->silhouette, x.silhouette, 1e-7, 1e-12));
    CHECK(close(s->explained_variance, x.explained_variance, 1e-9, 0));
  }
  CHECK(x.between_class_ratio > 0.05);  // the shifted dimensions are found
}

TEST_CASE("probe metrics: the silhouette subsample is seeded, of the asked size, and all items when few") {
  const auto a = silhouette_sample(1000, 100, 9), b = silhouette_sample(1000, 100, 9), c = silhouette_sample(1000, 100, 10);
  CHECK(std::count(a.begin(), a.end(), 1) == 100);
  CHECK(a == b);
  CHECK(a != c);
  const auto all = silhouette_sample(50, 100, 9);
  CHECK(std::count(all.begin(), all.end(), 1) == 50);
}

TEST_CASE("probe metrics: too few items, one class, or more components than dimensions are clear errors") {
  auto states = [](int n, int64_t width) {
    ClassStates s(width);
    std::vector<float> row(static_cast<size_t>(width));
    for (int i = 0; i < n; i++) {
      for (int64_t j = 0; j < width; j++) row[size_t(j)] = float((i * 7 + j * 3) % 5) - float(j);
      s.add(row.data(), true);
    }
    return s;
  };
  SeparationOptions opt;
  opt.components = 2;
  CHECK_THROWS_WITH_AS(separation(states(1, 3), states(4, 3), opt), doctest::Contains("at least 2 items in each class"), Error);
  opt.components = 5;
  CHECK_THROWS_WITH_AS(separation(states(2, 3), states(2, 3), opt), doctest::Contains("the hidden size 3"), Error);
  CHECK_THROWS_WITH_AS(separation(states(2, 8), states(3, 8), opt),
                       doctest::Contains("need more than 5 items; found 5 (2 harmful, 3 harmless)"), Error);
  ClassStates same(3), same2(3);
  const float r[3] = {1, 2, 3};
  for (int i = 0; i < 3; i++) {
    same.add(r, true);
    same2.add(r, true);
  }
  opt.components = 1;
  CHECK_THROWS_WITH_AS(separation(same, same2, opt), doctest::Contains("no variance"), Error);
}
