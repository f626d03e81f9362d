#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/embedded_backend.h"

namespace apx::backend {
namespace {

// A table of 50,000 rows: key K0..K4, one row per minute, values from a seeded normal.
std::unique_ptr<store::Table> MakeTable() {
  store::TableSchema schema{.name = "events",
                            .columns = {{"t", store::ColumnType::kTimestamp},
                                        {"v", store::ColumnType::kDouble},
                                        {"k", store::ColumnType::kString}},
                            .time_column = "t"};
  std::vector<store::Column> cols(3);
  cols[0].name = "t";
  cols[0].type = store::ColumnType::kTimestamp;
  cols[1].name = "v";
  cols[1].type = store::ColumnType::kDouble;
  cols[2].name = "k";
  cols[2].type = store::ColumnType::kString;
  cols[2].dictionary = {"K0", "K1", "K2", "K3", "K4"};
  std::mt19937_64 rng(301);
  std::normal_distribution<double> value(10, 3);
  const int n = 50000;
  for (int i = 0; i < n; ++i) {
    cols[0].ints.push_back(60LL * i);
    cols[1].doubles.push_back(value(rng));
    cols[2].codes.push_back(i % 5);
  }
  return std::make_unique<store::Table>(schema, std::move(cols), n);
}

class EmbeddedBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(backend_.AddTable(MakeTable()).ok());
    auto keyed = backend_.Prepare({.table = "events", .key_columns = {"k"}, .value_column = "v"});
    auto all = backend_.Prepare({.table = "events", .key_columns = {}, .value_column = "v"});
    ASSERT_TRUE(keyed.ok() && all.ok());
    keyed_ = *keyed;
    all_ = *all;
    ASSERT_TRUE(backend_.Build().ok());
  }
  EmbeddedBackend backend_{7};
  int keyed_ = -1, all_ = -1;
};

TEST_F(EmbeddedBackendTest, GrowingReadsOnlyNewRows) {
  std::string_view key[] = {"K2"};
  BoundQuery q;
  ASSERT_TRUE(backend_.Bind(keyed_, key, 60 * 1000, 60 * 40000, &q).ok());
  EXPECT_EQ(q.matching_rows, 39000 / 5);

  agg::Aggregator grown(agg::AggOp::kAvg), once(agg::AggOp::kAvg);
  agg::Aggregator* g[] = {&grown};
  agg::Aggregator* o[] = {&once};
  auto first = backend_.Read(q, 0, 5, g);
  auto second = backend_.Read(q, 5, 12, g);
  ASSERT_TRUE(first.ok() && second.ok());
  // The second read returns exactly the rows of strata 5..11, none of 0..4 again.
  EXPECT_EQ(*first, q.window.RowsIn(0, 5));
  EXPECT_EQ(*second, q.window.RowsIn(5, 12));
  EXPECT_EQ(grown.n(), *first + *second);
  auto all = backend_.Read(q, 0, 12, o);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, *first + *second);
  EXPECT_NEAR(grown.Finalize(0.12).value, once.Finalize(0.12).value, 1e-9);
}

TEST_F(EmbeddedBackendTest, ExactReadEqualsBruteForce) {
  BoundQuery q;
  ASSERT_TRUE(backend_.Bind(all_, {}, 60 * 100, 60 * 20100, &q).ok());
  EXPECT_EQ(q.matching_rows, 20000);
  agg::Aggregator avg(agg::AggOp::kAvg);
  agg::Aggregator* a[] = {&avg};
  auto sampled = backend_.Read(q, 0, kNumStrata, a);
  auto exact = backend_.ReadExact(q, a);
  ASSERT_TRUE(sampled.ok() && exact.ok());
  EXPECT_EQ(*exact, q.exact_rows);
  EXPECT_EQ(*sampled + *exact, 20000);
  EXPECT_EQ(avg.exact_n(), q.exact_rows);
  const store::Column& v = **backend_.table("events")->column("v");
  double sum = 0;
  for (int i = 100; i < 20100; ++i) sum += v.doubles[i];
  const agg::Estimate e = avg.Finalize(1.0);
  EXPECT_TRUE(e.exact);
  EXPECT_NEAR(e.value, sum / 20000, 1e-9);
}

TEST_F(EmbeddedBackendTest, SampledPartExcludesTheExactPart) {
  // The sampled strata and the exact cell partition the window; the rest range bounds every
  // sampled value.
  std::string_view key[] = {"K1"};
  BoundQuery q;
  ASSERT_TRUE(backend_.Bind(keyed_, key, 0, 60 * 50000, &q).ok());
  EXPECT_EQ(q.matching_rows, 10000);
  EXPECT_EQ(q.sampled_rows(), q.window.RowsIn(0, kNumStrata));
  agg::Aggregator lo(agg::AggOp::kMin), hi(agg::AggOp::kMax);
  agg::Aggregator* a[] = {&lo, &hi};
  ASSERT_TRUE(backend_.Read(q, 0, kNumStrata, a).ok());
  EXPECT_GE(lo.Finalize(1.0).value, q.rest_min);
  EXPECT_LE(hi.Finalize(1.0).value, q.rest_max);
  EXPECT_EQ(lo.Finalize(1.0).value, q.rest_min);
}

TEST_F(EmbeddedBackendTest, UnknownKeyIsAnEmptyQueryAndBadShapesAreErrors) {
  std::string_view key[] = {"nope"};
  BoundQuery q;
  ASSERT_TRUE(backend_.Bind(keyed_, key, 0, 60 * 1000, &q).ok());
  EXPECT_EQ(q.matching_rows, 0);
  EXPECT_EQ(q.group, -1);
  EXPECT_FALSE(backend_.Bind(99, key, 0, 1, &q).ok());
  EXPECT_EQ(backend_.Prepare({.table = "nope", .value_column = "v"}).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(backend_.Prepare({.table = "events", .value_column = "k"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(backend_.Prepare({.table = "events", .key_columns = {"zz"}, .value_column = "v"})
                .status()
                .code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace apx::backend
