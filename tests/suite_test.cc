// The benchmark pipelines at a small scale: generated data, training and the guarantee.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "eval/eval.h"
#include "eval/generators.h"
#include "eval/svg.h"
#include "pipeline/pipeline.h"
#include "pipeline/spec.h"
#include "small_spec.h"

namespace apx {
namespace {

constexpr double kScale = 0.02;

std::string TempDir() { return testing::TempDir("apx_suite_"); }

// Loads a shipped spec at the CI scale, with its snapshots and model redirected to a temp dir.
pipeline::PipelineSpec SmallSpec(const std::string& path) {
  return testing::SmallSpec(path, kScale, TempDir());
}

TEST(GeneratorTest, SameSeedSameDataOtherSeedOtherData) {
  auto a = eval::GenerateDataset("bearing", 1, 0.005);
  auto b = eval::GenerateDataset("bearing", 1, 0.005);
  auto c = eval::GenerateDataset("bearing", 2, 0.005);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ(a->size(), 2u);
  for (size_t t = 0; t < a->size(); ++t) {
    const store::Table& x = *(*a)[t];
    const store::Table& y = *(*b)[t];
    ASSERT_EQ(x.num_rows(), y.num_rows());
    for (size_t col = 0; col < x.columns().size(); ++col) {
      EXPECT_EQ(x.columns()[col].doubles, y.columns()[col].doubles);
      EXPECT_EQ(x.columns()[col].codes, y.columns()[col].codes);
      EXPECT_EQ(x.columns()[col].ints, y.columns()[col].ints);
    }
  }
  EXPECT_NE((*a)[0]->columns()[1].doubles, (*c)[0]->columns()[1].doubles);
  // 800 segments of max(200, 50,000 * scale) rows.
  EXPECT_EQ((*a)[0]->num_rows(), 800 * 250);
  EXPECT_EQ(eval::GenerateDataset("nope", 1, 1).status().code(), StatusCode::kNotFound);
}

TEST(GeneratorTest, EveryGeneratorIsDeterministic) {
  for (const std::string& name : eval::GeneratorNames()) {
    auto a = eval::GenerateDataset(name, 3, 0.002);
    auto b = eval::GenerateDataset(name, 3, 0.002);
    ASSERT_TRUE(a.ok() && b.ok()) << name;
    ASSERT_EQ(a->size(), b->size());
    for (size_t t = 0; t < a->size(); ++t) {
      const store::Table& x = *(*a)[t];
      const store::Table& y = *(*b)[t];
      ASSERT_GT(x.num_rows(), 0) << name;
      ASSERT_EQ(x.num_rows(), y.num_rows()) << name;
      for (size_t col = 0; col < x.columns().size(); ++col) {
        EXPECT_EQ(x.columns()[col].doubles, y.columns()[col].doubles) << name;
        EXPECT_EQ(x.columns()[col].codes, y.columns()[col].codes) << name;
        EXPECT_EQ(x.columns()[col].ints, y.columns()[col].ints) << name;
      }
      // Tables with a time column come out sorted by it (the sampled layouts rely on it).
      if (const store::Column* time = x.time_column()) {
        EXPECT_TRUE(std::is_sorted(time->ints.begin(), time->ints.end())) << name << "/" << x.name();
      }
    }
  }
}

struct SuiteCase {
  const char* spec;
  double min_metric;  // the label metric (r2 or f1) the model must beat: not hopeless
};

class SuitePipelineTest : public ::testing::TestWithParam<SuiteCase> {};

// At this scale most queries match under 1,000 rows and are read whole, so these cases check
// preparation, training and the answers' plumbing, not approximation (which
// ApproximatesAtFullScale below and tests/stress_test.cc do).
TEST_P(SuitePipelineTest, PreparesItselfAndKeepsTheGuarantee) {
  pipeline::PipelineSpec spec = SmallSpec(GetParam().spec);
  ASSERT_TRUE(eval::Prepare(spec, 2, false).ok());
  for (const pipeline::TableSpec& t : spec.tables) EXPECT_TRUE(std::filesystem::exists(t.snapshot));
  EXPECT_TRUE(std::filesystem::exists(spec.model.path));
  // Force the approximate path: at this scale exact is cheap and the cut-over would take it.
  spec.guarantee.cut_over = false;
  auto p = pipeline::Pipeline::Open(spec);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto report = eval::RunEval(**p, {.progress = false});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GE(report->requests, 300);
  EXPECT_GE(report->meet_rate, report->tau) << GetParam().spec;
  EXPECT_NEAR(report->approx_metric, report->exact_metric, 0.03);
  EXPECT_EQ(report->low_confidence_rate, 0.0);
  // Models are neither trivial nor hopeless on the labels.
  EXPECT_GT(report->exact_metric, GetParam().min_metric);
  EXPECT_LT(report->exact_metric, 0.999);
}

// One generated pipeline at its published scale, where the approximate path must sample:
// tick (1,000 requests of ~3,500 rows each; measured: sample ratio 0.066, 1.13 rounds). It
// has to read less than half the rows, run propagation rounds, and meet τ within three
// binomial standard errors.
TEST(SuiteSamplingTest, ApproximatesAtFullScale) {
  pipeline::PipelineSpec spec = testing::SmallSpec("pipelines/tick.yaml", 1.0, TempDir());
  ASSERT_TRUE(eval::Prepare(spec, 2, false).ok());
  spec.guarantee.cut_over = false;
  auto p = pipeline::Pipeline::Open(spec);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto report = eval::RunEval(**p, {.n = 400, .progress = false});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_LT(report->avg_sample_ratio, 0.5);
  EXPECT_GE(report->avg_rounds, 1.0);
  const double tau = report->tau;
  EXPECT_GE(report->meet_rate, tau - 3 * std::sqrt(tau * (1 - tau) / report->requests));
  EXPECT_NEAR(report->approx_metric, report->exact_metric, 0.02);
}

INSTANTIATE_TEST_SUITE_P(Pipelines, SuitePipelineTest,
                         ::testing::Values(SuiteCase{"pipelines/bearing.yaml", 0.6},
                                           SuiteCase{"pipelines/bearing-median.yaml", 0.6},
                                           SuiteCase{"pipelines/tick.yaml", 0.1},
                                           SuiteCase{"pipelines/tick-median.yaml", 0.1},
                                           SuiteCase{"pipelines/turbofan.yaml", 0.5},
                                           SuiteCase{"pipelines/turbofan-median.yaml", 0.5},
                                           SuiteCase{"pipelines/trip-fare.yaml", 0.5},
                                           SuiteCase{"pipelines/trip-fare-median.yaml", 0.5},
                                           SuiteCase{"pipelines/battery.yaml", 0.5},
                                           SuiteCase{"pipelines/battery-median.yaml", 0.5},
                                           SuiteCase{"pipelines/fraud.yaml", 0.2},
                                           SuiteCase{"pipelines/fraud-median.yaml", 0.2},
                                           SuiteCase{"pipelines/student.yaml", 0.6},
                                           SuiteCase{"pipelines/student-median.yaml", 0.6}));

}  // namespace
}  // namespace apx

namespace apx::eval {
namespace {

TEST(SvgTest, BarChartHasBarsLabelsAndEscapes) {
  const std::string svg = BarChartSvg({{"a<b", 2.0, "2x"}, {"c&d", 8.0, "8x"}}, {{5.3, "5.3x"}},
                                      {.title = "speed", .min_value = 0.5, .log_scale = true});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("a&lt;b"), std::string::npos);
  EXPECT_NE(svg.find("c&amp;d"), std::string::npos);
  EXPECT_EQ(svg.find("a<b"), std::string::npos);
  // Two bars, one reference line: the larger value gets the wider bar.
  size_t first = svg.find("<rect x=\"170\""), second = svg.find("<rect x=\"170\"", first + 1);
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  auto width = [&](size_t at) { return std::stod(svg.substr(svg.find("width=\"", at) + 7)); };
  EXPECT_LT(width(first), width(second));
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
}

TEST(SvgTest, ScatterPlacesPointsByValueAndEscapes) {
  const std::string svg = ScatterSvg(
      {{.name = "p<1>", .points = {{1.0, 0.5, "exact"}, {0.1, 0.6, "10x"}}},
       {.name = "q", .points = {{0.5, 0.2, ""}}, .line = false}},
      {.title = "t&t", .x_label = "ms", .y_label = "r2", .log_x = true});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("p&lt;1&gt;"), std::string::npos);
  EXPECT_NE(svg.find("t&amp;t"), std::string::npos);
  EXPECT_EQ(svg.find("polyline", svg.find("polyline") + 1), std::string::npos);  // q: no line
  // Circles in input order: x grows with latency, y (SVG grows downwards) with the metric.
  std::vector<std::pair<double, double>> at;
  for (size_t pos = svg.find("<circle"); pos != std::string::npos; pos = svg.find("<circle", pos + 1)) {
    at.emplace_back(std::stod(svg.substr(svg.find("cx=\"", pos) + 4)),
                    std::stod(svg.substr(svg.find("cy=\"", pos) + 4)));
  }
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GT(at[0].first, at[2].first);   // 1.0 ms right of 0.5 ms
  EXPECT_GT(at[2].first, at[1].first);   // 0.5 ms right of 0.1 ms
  EXPECT_LT(at[1].second, at[0].second); // 0.6 above 0.5
  EXPECT_GT(at[2].second, at[0].second); // 0.2 below 0.5
}

}  // namespace
}  // namespace apx::eval
