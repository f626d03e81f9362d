// uq/sobol_test.cc
#include "uq/sobol.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace apx::uq {
namespace {

std::vector<double> Points(int dims, int n, uint64_t seed, Scrambling scrambling) {
  Result<std::vector<double>> points = SobolPoints(dims, n, seed, scrambling);
  EXPECT_TRUE(points.ok()) << points.status().ToString();
  return points.ok() ? *points : std::vector<double>();
}

// True when each 1-D projection of the n = 2^m points has exactly one point per 1/n interval.
bool EveryProjectionStratified(const std::vector<double>& points, int dims, int n) {
  for (int dim_idx = 0; dim_idx < dims; ++dim_idx) {
    std::vector<int> count(n, 0);
    for (int point_idx = 0; point_idx < n; ++point_idx) {
      ++count[static_cast<int>(points[point_idx * dims + dim_idx] * n)];
    }
    for (int c : count) {
      if (c != 1) return false;
    }
  }
  return true;
}

// True when dims 0 and 1 of the first 2^m points form a (0, m, 2)-net: every elementary box
// [i/2^a, (i+1)/2^a) x [j/2^(m-a), (j+1)/2^(m-a)) holds exactly one point.
bool First2DimsAreZeroNet(const std::vector<double>& points, int dims, int m) {
  const int n = 1 << m;
  for (int a = 0; a <= m; ++a) {
    const int nx = 1 << a;
    const int ny = 1 << (m - a);
    std::vector<int> count(n, 0);
    for (int point_idx = 0; point_idx < n; ++point_idx) {
      const int ix = static_cast<int>(points[point_idx * dims] * nx);
      const int iy = static_cast<int>(points[point_idx * dims + 1] * ny);
      ++count[ix * ny + iy];
    }
    for (int c : count) {
      if (c != 1) return false;
    }
  }
  return true;
}

TEST(SobolPointsTest, UnscrambledMatchesJoeKuoReference) {
  // Joe & Kuo new-joe-kuo-6.21201, Gray-code order, origin first (as scipy.stats.qmc.Sobol
  // with scramble=False). Boost's engine itself starts at the second row (0.5, 0.5, 0.5).
  const std::vector<std::vector<double>> expected = {
      {0, 0, 0},
      {0.5, 0.5, 0.5},
      {0.75, 0.25, 0.25},
      {0.25, 0.75, 0.75},
      {0.375, 0.375, 0.625},
      {0.875, 0.875, 0.125},
      {0.625, 0.125, 0.875},
      {0.125, 0.625, 0.375},
      {0.1875, 0.3125, 0.9375},
  };
  const std::vector<double> points = Points(3, 9, 0, Scrambling::kNone);
  ASSERT_EQ(points.size(), 27u);
  for (size_t point_idx = 0; point_idx < expected.size(); ++point_idx) {
    for (size_t dim_idx = 0; dim_idx < 3; ++dim_idx) {
      EXPECT_EQ(points[point_idx * 3 + dim_idx], expected[point_idx][dim_idx])
          << "point " << point_idx << " dim " << dim_idx;
    }
  }
  // The bool form without scrambling is the same sequence, and the seed is ignored.
  Result<std::vector<double>> plain = SobolPoints(3, 9, 12345, false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, points);
}

TEST(SobolPointsTest, TwoDimensionsMatchReference) {
  const std::vector<double> points = Points(2, 4, 0, Scrambling::kNone);
  const std::vector<double> expected = {0, 0, 0.5, 0.5, 0.75, 0.25, 0.25, 0.75};
  EXPECT_EQ(points, expected);
}

TEST(SobolPointsTest, UnscrambledFirstPowerOfTwoPointsAreBalanced) {
  const std::vector<double> points = Points(8, 128, 0, Scrambling::kNone);
  EXPECT_TRUE(EveryProjectionStratified(points, 8, 128));
  EXPECT_TRUE(First2DimsAreZeroNet(points, 8, 7));
}

TEST(SobolPointsTest, ScrambledPointsStayInUnitInterval) {
  for (Scrambling s : {Scrambling::kDigitalShift, Scrambling::kOwen}) {
    for (uint64_t seed : {0ull, 1ull, 42ull, ~0ull}) {
      const std::vector<double> points = Points(20, 1000, seed, s);
      for (double u : points) {
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
      }
    }
  }
}

TEST(SobolPointsTest, ScrambledPointsAreDeterministicPerSeed) {
  for (Scrambling s : {Scrambling::kDigitalShift, Scrambling::kOwen}) {
    EXPECT_EQ(Points(6, 256, 7, s), Points(6, 256, 7, s));
    EXPECT_NE(Points(6, 256, 7, s), Points(6, 256, 8, s));
  }
  EXPECT_NE(Points(6, 256, 7, Scrambling::kDigitalShift), Points(6, 256, 7, Scrambling::kOwen));
  // The bool form scrambles with Owen.
  Result<std::vector<double>> owen = SobolPoints(6, 256, 7, true);
  ASSERT_TRUE(owen.ok());
  EXPECT_EQ(*owen, Points(6, 256, 7, Scrambling::kOwen));
}

TEST(SobolPointsTest, ScramblingDiffersAcrossDimensions) {
  // Dimensions 0 and 1 share the first digit pattern in the plain sequence; each gets its own
  // random word, so their scrambled columns differ.
  for (Scrambling s : {Scrambling::kDigitalShift, Scrambling::kOwen}) {
    const std::vector<double> points = Points(2, 16, 3, s);
    bool any_differs = false;
    for (int i = 0; i < 16; ++i) any_differs |= points[i * 2] != points[i * 2 + 1];
    EXPECT_TRUE(any_differs);
  }
}

TEST(SobolPointsTest, DigitalShiftKeepsOnePointPerInterval) {
  for (uint64_t seed : {1ull, 2ull, 99ull}) {
    const std::vector<double> points = Points(10, 128, seed, Scrambling::kDigitalShift);
    EXPECT_TRUE(EveryProjectionStratified(points, 10, 128)) << "seed " << seed;
    EXPECT_TRUE(First2DimsAreZeroNet(points, 10, 7)) << "seed " << seed;
  }
}

TEST(SobolPointsTest, OwenKeepsOnePointPerInterval) {
  for (uint64_t seed : {1ull, 2ull, 99ull}) {
    const std::vector<double> points = Points(10, 128, seed, Scrambling::kOwen);
    EXPECT_TRUE(EveryProjectionStratified(points, 10, 128)) << "seed " << seed;
    EXPECT_TRUE(First2DimsAreZeroNet(points, 10, 7)) << "seed " << seed;
    const std::vector<double> more = Points(4, 1024, seed, Scrambling::kOwen);
    EXPECT_TRUE(EveryProjectionStratified(more, 4, 1024)) << "seed " << seed;
  }
}

TEST(SobolPointsTest, OwenPointIsUniformAcrossSeeds) {
  // Each Owen-scrambled point is U[0,1): over 4000 seeds, the origin's image has mean 1/2 and
  // variance 1/12 (standard error of the mean ~ 0.0046).
  constexpr int kSeeds = 4000;
  double sum = 0, sum_sq = 0;
  for (int seed = 0; seed < kSeeds; ++seed) {
    const double u = Points(1, 1, static_cast<uint64_t>(seed), Scrambling::kOwen)[0];
    sum += u;
    sum_sq += u * u;
  }
  const double mean = sum / kSeeds;
  EXPECT_NEAR(mean, 0.5, 0.02);
  EXPECT_NEAR(sum_sq / kSeeds - mean * mean, 1.0 / 12.0, 0.01);
}

TEST(SobolPointsTest, ScrambledQmcIntegratesAccurately) {
  // E[x0 x1 x2 x3] = 1/16 over 1024 Owen-scrambled points: RQMC error is far below the
  // plain Monte Carlo standard error (~0.003 for this integrand).
  const std::vector<double> points = Points(4, 1024, 5, Scrambling::kOwen);
  double sum = 0;
  for (int i = 0; i < 1024; ++i) {
    sum += points[i * 4] * points[i * 4 + 1] * points[i * 4 + 2] * points[i * 4 + 3];
  }
  EXPECT_NEAR(sum / 1024, 1.0 / 16.0, 5e-4);
}

TEST(SobolPointsTest, SmallAndEmptyRequests) {
  EXPECT_TRUE(Points(3, 0, 0, Scrambling::kOwen).empty());
  EXPECT_EQ(Points(3, 1, 0, Scrambling::kNone), std::vector<double>(3, 0.0));
  EXPECT_EQ(Points(kMaxSobolDims, 2, 0, Scrambling::kNone).size(),
            2u * static_cast<size_t>(kMaxSobolDims));
}

TEST(SobolPointsTest, RejectsBadArguments) {
  EXPECT_EQ(SobolPoints(0, 4, 0, true).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SobolPoints(-2, 4, 0, true).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SobolPoints(kMaxSobolDims + 1, 4, 0, true).status().code(),
            StatusCode::kInvalidArgument);
  Result<std::vector<double>> negative = SobolPoints(2, -1, 0, true);
  EXPECT_EQ(negative.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("n = -1"), std::string::npos);
}

}  // namespace
}  // namespace apx::uq
