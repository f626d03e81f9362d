// Schedule parsing and the Poisson arrival process of the load generator.
#include "serve/loadgen.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace apx::serve {
namespace {

TEST(ScheduleTest, ParsesConstantRampAndRelativeRates) {
  auto s = ParseSchedule("200@10s,100-400@30s,0.5x-3x@5s", 1000);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ((*s)[0].from, 200);
  EXPECT_EQ((*s)[0].to, 200);
  EXPECT_EQ((*s)[0].seconds, 10);
  EXPECT_EQ((*s)[1].from, 100);
  EXPECT_EQ((*s)[1].to, 400);
  EXPECT_EQ((*s)[2].from, 500);
  EXPECT_EQ((*s)[2].to, 3000);
}

TEST(ScheduleTest, BadPiecesAreNamed) {
  for (const char* bad : {"", "200", "200@10", "abc@10s", "200@-1s", "2x@5s", "100-@5s"}) {
    auto s = ParseSchedule(bad, 0);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseSchedule("200@10", 0).status().message().find("'200@10'"), std::string::npos);
  EXPECT_NE(ParseSchedule("2x@5s", 0).status().message().find("unit rate"), std::string::npos);
}

TEST(PoissonTest, CountsFollowTheScheduleAndGapsAreExponential) {
  // 2,000/s for 20 s, then a ramp 0 -> 4,000/s over 20 s (40,000 expected arrivals each).
  const std::vector<RateSegment> schedule = {{2000, 2000, 20}, {0, 4000, 20}};
  const std::vector<double> t = PoissonArrivals(schedule, 7);
  ASSERT_TRUE(std::is_sorted(t.begin(), t.end()));
  const auto in = [&](double a, double b) {
    return std::count_if(t.begin(), t.end(), [&](double x) { return x >= a && x < b; });
  };
  // Poisson counts: within 4 standard deviations of the expectation.
  EXPECT_NEAR(in(0, 20), 40000, 4 * std::sqrt(40000));
  EXPECT_NEAR(in(20, 30), 10000, 4 * std::sqrt(10000));  // ramp: 0..2000 over 10 s
  EXPECT_NEAR(in(30, 40), 30000, 4 * std::sqrt(30000));  // 2000..4000
  // Constant part: mean gap 0.5 ms and coefficient of variation ~1 (exponential).
  double sum = 0, sum2 = 0;
  int n = 0;
  for (size_t i = 1; i < t.size() && t[i] < 20; ++i) {
    const double g = t[i] - t[i - 1];
    sum += g;
    sum2 += g * g;
    ++n;
  }
  const double mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
  EXPECT_NEAR(mean, 0.0005, 0.00002);
  EXPECT_NEAR(sd / mean, 1.0, 0.03);
  EXPECT_EQ(PoissonArrivals(schedule, 7), t);  // seeded
}

}  // namespace
}  // namespace apx::serve
