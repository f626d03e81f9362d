#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <random>
#include <set>
#include <tuple>

#include "store/append_log.h"
#include "store/sampled_index.h"
#include "store/table.h"

namespace apx::store {
namespace {

std::string TempPath(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("apx_store_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

TableSchema FlightSchema() {
  return TableSchema{.name = "flights",
                     .columns = {{"dep_time", ColumnType::kTimestamp},
                                 {"delay", ColumnType::kDouble},
                                 {"origin", ColumnType::kString}},
                     .time_column = "dep_time"};
}

// A synthetic table: `n` rows, keys A/B/C, times one minute apart (written out of order).
std::string SyntheticCsv(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> delay(5, 20);
  std::string csv = "dep_time,delay,origin\n";
  for (int i = n - 1; i >= 0; --i) {
    csv += std::to_string(978307200 + 60 * i) + "," + std::to_string(std::round(delay(rng))) + "," +
           "ABC"[i % 3] + "\n";
  }
  return csv;
}

TEST(TimestampTest, ParsesAndFormats) {
  EXPECT_EQ(*ParseTimestamp("1970-01-01"), 0);
  EXPECT_EQ(*ParseTimestamp("2001-01-01 00:01"), 978307260);
  EXPECT_EQ(*ParseTimestamp("2001-01-01T00:01:30"), 978307290);
  EXPECT_EQ(*ParseTimestamp("978307260"), 978307260);
  EXPECT_EQ(FormatTimestamp(978307290), "2001-01-01 00:01:30");
  EXPECT_FALSE(ParseTimestamp("2001-13-01").ok());
  EXPECT_FALSE(ParseTimestamp("yesterday").ok());
  EXPECT_EQ(*ParseDuration("-30d"), -30 * 86400);
  EXPECT_EQ(*ParseDuration("90m"), 5400);
  EXPECT_FALSE(ParseDuration("7 days").ok());
}

// Once silently accepted (issue 9): 2001-02-30 became March 2, huge epoch values and window
// durations overflowed.
TEST(TimestampTest, ImpossibleDatesAndHugeValuesAreErrors) {
  EXPECT_FALSE(ParseTimestamp("2001-02-30").ok());
  EXPECT_FALSE(ParseTimestamp("2001-04-31 10:00").ok());
  EXPECT_FALSE(ParseTimestamp("2001-01-01 10:00:60").ok());
  EXPECT_TRUE(ParseTimestamp("2000-02-29").ok());   // leap year
  EXPECT_FALSE(ParseTimestamp("1900-02-29").ok());  // not one
  EXPECT_EQ(*ParseTimestamp("9999-12-31 23:59:59"), kMaxTimestamp);
  EXPECT_EQ(*ParseTimestamp("0000-01-01"), kMinTimestamp);
  EXPECT_FALSE(ParseTimestamp("253402300800").ok());
  EXPECT_FALSE(ParseTimestamp("-9223372036854775808").ok());
  EXPECT_FALSE(ParseDuration("9223372036854775807s").ok());
  EXPECT_FALSE(ParseDuration("200000000000d").ok());
  EXPECT_TRUE(ParseDuration("2000000d").ok());
}

TEST(CsvTest, ReadsAndSortsByTime) {
  const std::string path = TempPath("ok.csv");
  WriteFile(path, SyntheticCsv(300, 1));
  auto table = ReadCsv(path, FlightSchema());
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ((*table)->num_rows(), 300);
  const Column* t = (*table)->time_column();
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(std::is_sorted(t->ints.begin(), t->ints.end()));
  const Column* origin = *(*table)->column("origin");
  EXPECT_EQ(origin->dictionary.size(), 3u);
  EXPECT_GE(origin->FindCode("B"), 0);
  EXPECT_EQ(origin->FindCode("Z"), -1);
}

// Many quoted fields in one line: the unescaped values once lived in a vector whose growth
// moved them under the views (use-after-free; fuzz/csv_fuzz under ASan).
TEST(CsvTest, ManyQuotedFieldsInOneLine) {
  const std::string path = TempPath("quoted.csv");
  std::string header, row;
  TableSchema schema{.name = "q", .columns = {}, .time_column = ""};
  for (int c = 0; c < 20; ++c) {
    const std::string name = "c" + std::to_string(c);
    header += (c ? "," : "") + std::string("\"") + name + "\"";
    row += (c ? "," : "") + std::string("\"v") + std::to_string(c) + "\"\"x\"";
    schema.columns.push_back({name, ColumnType::kString});
  }
  WriteFile(path, header + "\n" + row + "\n" + row + "\n");
  auto table = ReadCsv(path, schema);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  for (int c = 0; c < 20; ++c) {
    const Column* col = *(*table)->column("c" + std::to_string(c));
    ASSERT_EQ(col->dictionary.size(), 1u);
    EXPECT_EQ(col->dictionary[0], "v" + std::to_string(c) + "\"x");
  }
  // Not a regular file: an error, not an endless read.
  EXPECT_EQ(ReadCsv("/dev/zero", schema).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadCsv(std::filesystem::path(path).parent_path().string(), schema).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CsvTest, BadRowsNameLineAndColumn) {
  const std::string path = TempPath("bad.csv");
  WriteFile(path, "dep_time,delay,origin\n2001-01-01 00:01,3,ORD\n2001-01-01 00:02,abc,ORD\n");
  auto table = ReadCsv(path, FlightSchema());
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find(":3: column 'delay'"), std::string::npos)
      << table.status().message();

  WriteFile(path, "dep_time,delay,origin\n2001-01-01 00:01,nan,ORD\n");
  table = ReadCsv(path, FlightSchema());
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("not a finite number"), std::string::npos);

  WriteFile(path, "dep_time,delay,origin\n2001-01-01 00:01,3\n");
  table = ReadCsv(path, FlightSchema());
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find(":2: expected 3 fields, found 2"), std::string::npos);

  WriteFile(path, "dep_time,origin\n2001-01-01 00:01,ORD\n");
  table = ReadCsv(path, FlightSchema());
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("header has no column 'delay'"), std::string::npos);

  WriteFile(path, "dep_time,delay,origin\n2001-02-30 25:00,3,ORD\n");
  table = ReadCsv(path, FlightSchema());
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("column 'dep_time': bad timestamp"), std::string::npos);

  EXPECT_EQ(ReadCsv(TempPath("missing.csv"), FlightSchema()).status().code(),
            StatusCode::kNotFound);
}

TEST(SnapshotTest, RoundTripIsIdentical) {
  const std::string csv = TempPath("snap.csv");
  WriteFile(csv, SyntheticCsv(1000, 2));
  auto table = ReadCsv(csv, FlightSchema());
  ASSERT_TRUE(table.ok());
  const std::string snap = TempPath("t.apxsnap");
  ASSERT_TRUE(WriteSnapshot(**table, snap).ok());
  auto loaded = ReadSnapshot(snap);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->num_rows(), (*table)->num_rows());
  EXPECT_EQ((*loaded)->schema().time_column, "dep_time");
  for (size_t c = 0; c < (*table)->columns().size(); ++c) {
    const Column& a = (*table)->columns()[c];
    const Column& b = (*loaded)->columns()[c];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.ints, b.ints);
    EXPECT_EQ(a.doubles, b.doubles);
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.dictionary, b.dictionary);
  }
  EXPECT_EQ((*(*loaded)->column("origin"))->FindCode("C"), (*(*table)->column("origin"))->FindCode("C"));
}

TEST(SnapshotTest, CrashMidWriteLeavesOldSnapshotIntact) {
  const std::string csv = TempPath("crash.csv");
  WriteFile(csv, SyntheticCsv(500, 3));
  auto old_table = ReadCsv(csv, FlightSchema());
  ASSERT_TRUE(old_table.ok());
  const std::string snap = TempPath("crash.apxsnap");
  ASSERT_TRUE(WriteSnapshot(**old_table, snap).ok());

  WriteFile(csv, SyntheticCsv(900, 4));
  auto new_table = ReadCsv(csv, FlightSchema());
  ASSERT_TRUE(new_table.ok());
  Status s = WriteSnapshot(**new_table, snap, {.fail_after_bytes_for_testing = 4000});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);

  auto loaded = ReadSnapshot(snap);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->num_rows(), 500);
  // No temporary file is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(snap).parent_path())) {
    EXPECT_EQ(entry.path().string().find("crash.apxsnap.tmp"), std::string::npos);
  }
}

TEST(SnapshotTest, CorruptOrTruncatedFilesAreRejected) {
  const std::string csv = TempPath("corrupt.csv");
  WriteFile(csv, SyntheticCsv(200, 5));
  auto table = ReadCsv(csv, FlightSchema());
  ASSERT_TRUE(table.ok());
  const std::string snap = TempPath("corrupt.apxsnap");
  ASSERT_TRUE(WriteSnapshot(**table, snap).ok());
  std::string bytes;
  {
    std::ifstream in(snap, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x5a;
  WriteFile(snap, flipped);
  EXPECT_EQ(ReadSnapshot(snap).status().code(), StatusCode::kDataLoss);
  WriteFile(snap, bytes.substr(0, bytes.size() - 100));
  EXPECT_EQ(ReadSnapshot(snap).status().code(), StatusCode::kDataLoss);
  WriteFile(snap, "not a snapshot at all, just text");
  EXPECT_EQ(ReadSnapshot(snap).status().code(), StatusCode::kInvalidArgument);
}

// Issue 9: a file at the snapshot path that is not a snapshot was overwritten (the CSV
// itself, /dev/null, a user's file). Only a regular file with the snapshot magic is replaced.
TEST(SnapshotTest, NeverReplacesWhatIsNotASnapshot) {
  const std::string csv = TempPath("own.csv");
  WriteFile(csv, SyntheticCsv(100, 7));
  auto table = ReadCsv(csv, FlightSchema());
  ASSERT_TRUE(table.ok());
  // The CSV itself, a user's file, a directory, a FIFO (a non-regular file like /dev/null).
  const std::string users = TempPath("users.txt");
  WriteFile(users, "precious notes");
  const std::string dir = TempPath("a_dir");
  std::filesystem::create_directories(dir);
  const std::string fifo = TempPath("a_fifo");
  std::filesystem::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string link = TempPath("a_link.apxsnap");
  std::filesystem::remove(link);
  std::filesystem::create_symlink(users, link);
  for (const std::string& path : {csv, users, dir, fifo, link}) {
    const Status s = WriteSnapshot(**table, path);
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << path << ": " << s.ToString();
    EXPECT_NE(s.message().find("refusing to replace"), std::string::npos) << s.message();
  }
  EXPECT_EQ(ReadCsv(csv, FlightSchema()).value()->num_rows(), 100);  // the CSV is intact
  std::ifstream in(users);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "precious notes");
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  // A snapshot is replaced.
  const std::string snap = TempPath("own.apxsnap");
  ASSERT_TRUE(WriteSnapshot(**table, snap).ok());
  EXPECT_TRUE(WriteSnapshot(**table, snap).ok());
}

// Temporaries of killed ingests (516 MB after 82 kills in the probe) are removed by the
// next write; a live process's temporary is left alone.
TEST(SnapshotTest, TemporariesOfDeadWritersAreRemoved) {
  const std::string csv = TempPath("tmp.csv");
  WriteFile(csv, SyntheticCsv(50, 8));
  auto table = ReadCsv(csv, FlightSchema());
  ASSERT_TRUE(table.ok());
  const std::string snap = TempPath("tmp.apxsnap");
  pid_t dead = 4'000'000;  // above pid_max on Linux by default: never a running process
  ASSERT_NE(::kill(dead, 0), 0);
  const std::string stale = snap + ".tmp." + std::to_string(dead);
  const std::string live = snap + ".tmp." + std::to_string(::getppid());
  WriteFile(stale, std::string(1000, 'x'));
  WriteFile(live, "y");
  ASSERT_TRUE(WriteSnapshot(**table, snap).ok());
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(live));
  std::filesystem::remove(live);
}

// A snapshot with a valid checksum but contents no ingest produces (written by another
// version, or crafted) is refused on load instead of crashing or answering wrongly.
TEST(SnapshotTest, InvariantsAreCheckedOnLoad) {
  auto make = [](std::vector<int64_t> times, std::vector<double> values) {
    std::vector<Column> cols(2);
    cols[0].name = "dep_time";
    cols[0].type = ColumnType::kTimestamp;
    cols[0].ints = std::move(times);
    cols[1].name = "delay";
    cols[1].type = ColumnType::kDouble;
    cols[1].doubles = std::move(values);
    const int64_t n = static_cast<int64_t>(cols[0].ints.size());
    return std::make_unique<Table>(TableSchema{.name = "flights",
                                               .columns = {{"dep_time", ColumnType::kTimestamp},
                                                           {"delay", ColumnType::kDouble}},
                                               .time_column = "dep_time"},
                                   std::move(cols), n);
  };
  const std::string snap = TempPath("crafted.apxsnap");
  ASSERT_TRUE(WriteSnapshot(*make({1, 2, 3}, {1, 2, 3}), snap).ok());
  EXPECT_TRUE(ReadSnapshot(snap).ok());
  ASSERT_TRUE(WriteSnapshot(*make({3, 1, 2}, {1, 2, 3}), snap).ok());
  auto unsorted = ReadSnapshot(snap);
  EXPECT_EQ(unsorted.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(unsorted.status().message().find("is not sorted"), std::string::npos) << unsorted.status().message();
  ASSERT_TRUE(WriteSnapshot(*make({1, 2, 3}, {1, NAN, 3}), snap).ok());
  auto nan = ReadSnapshot(snap);
  EXPECT_EQ(nan.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(nan.status().message().find("NaN"), std::string::npos) << nan.status().message();
}

TEST(SnapshotTest, SchemaMismatchIsNamed) {
  const std::string csv = TempPath("schema.csv");
  WriteFile(csv, SyntheticCsv(20, 9));
  TableSchema no_time = FlightSchema();
  no_time.time_column.clear();
  auto table = ReadCsv(csv, no_time);
  ASSERT_TRUE(table.ok());
  EXPECT_TRUE(CheckTableMatches(**table, no_time).ok());
  const Status s = CheckTableMatches(**table, FlightSchema());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("time column is '', the spec says 'dep_time'"), std::string::npos) << s.message();
  TableSchema retyped = no_time;
  retyped.columns[1].type = ColumnType::kInt64;
  EXPECT_NE(CheckTableMatches(**table, retyped).message().find("column 'delay' is double, the spec says int64"),
            std::string::npos);
}

class SampledIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string csv = TempPath("index.csv");
    WriteFile(csv, SyntheticCsv(60000, 6));
    auto table = ReadCsv(csv, FlightSchema());
    ASSERT_TRUE(table.ok());
    table_ = std::move(*table);
    auto index = SampledIndex::Build(*table_, {.key_columns = {"origin"},
                                               .value_columns = {"delay"},
                                               .seed = 42});
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    index_ = std::move(*index);
  }
  std::unique_ptr<Table> table_;
  std::unique_ptr<SampledIndex> index_;
};

TEST_F(SampledIndexTest, StrataAreUniform) {
  // Chi-square test of the stratum counts of group A against the uniform distribution:
  // 99 degrees of freedom, critical value at the 0.1 % level is 148.2.
  std::string_view key[] = {"A"};
  const int group = index_->FindGroup(key);
  ASSERT_GE(group, 0);
  StrataWindow w;
  index_->Window(group, INT64_MIN, INT64_MAX, &w);
  EXPECT_EQ(w.TotalRows(), 20000);
  const int64_t total = w.RowsIn(0, kNumStrata);  // the sampled rest (outliers are exact)
  EXPECT_GE(total, 19800);
  const double expected = static_cast<double>(total) / kNumStrata;
  double chi2 = 0;
  for (int s = 0; s < kNumStrata; ++s) {
    const double d = static_cast<double>(w.hi[s] - w.lo[s]) - expected;
    chi2 += d * d / expected;
  }
  EXPECT_LT(chi2, 148.2);
  EXPECT_GT(chi2, 60.0);  // not suspiciously uniform either (0.1 % lower tail is 61.9)
}

TEST_F(SampledIndexTest, WindowMatchesBruteForce) {
  std::string_view key[] = {"B"};
  const int group = index_->FindGroup(key);
  const int64_t t0 = 978307200 + 60 * 10000, t1 = 978307200 + 60 * 25000;
  StrataWindow w;
  index_->Window(group, t0, t1, &w);
  const Column& t = *table_->time_column();
  const Column& origin = **table_->column("origin");
  const Column& delay = **table_->column("delay");
  const int32_t code_b = origin.FindCode("B");
  double sum = 0;
  int64_t rows = 0;
  for (int64_t r = 0; r < table_->num_rows(); ++r) {
    if (origin.codes[r] == code_b && t.ints[r] >= t0 && t.ints[r] < t1) {
      sum += delay.doubles[r];
      ++rows;
    }
  }
  double index_sum = 0;
  std::set<uint32_t> seen;
  const double* v = index_->values(index_->ValueIndex("delay"));
  for (int s = 0; s < kCellsPerGroup; ++s) {  // the strata and the exact cell
    for (uint32_t p = w.lo[s]; p < w.hi[s]; ++p) {
      index_sum += v[p];
      EXPECT_TRUE(seen.insert(p).second);  // every row read once
      EXPECT_GE(index_->times()[p], t0);
      EXPECT_LT(index_->times()[p], t1);
    }
  }
  EXPECT_EQ(w.TotalRows(), rows);
  EXPECT_NEAR(index_sum, sum, 1e-9 * std::abs(sum));
}

TEST_F(SampledIndexTest, SamplePrefixesAreUnbiased) {
  // The mean of strata 0..4 (a 5 % sample) over many keys' windows is an unbiased estimate of
  // the mean of the sampled rest (the strata, without the exact cell): average the
  // sample-minus-exact error over 200 windows; it must be small against its standard error.
  std::string_view key[] = {"C"};
  const int group = index_->FindGroup(key);
  const double* v = index_->values(0);
  double err_sum = 0, err_sq = 0;
  const int windows = 200;
  for (int i = 0; i < windows; ++i) {
    StrataWindow w;
    const int64_t t0 = 978307200 + 60 * (i * 250);
    index_->Window(group, t0, t0 + 60 * 9000, &w);
    double all = 0, sample = 0;
    int64_t n_all = 0, n_sample = 0;
    for (int s = 0; s < kNumStrata; ++s) {
      for (uint32_t p = w.lo[s]; p < w.hi[s]; ++p) {
        all += v[p];
        ++n_all;
        if (s < 5) {
          sample += v[p];
          ++n_sample;
        }
      }
    }
    ASSERT_GT(n_sample, 0);
    const double err = sample / n_sample - all / n_all;
    err_sum += err;
    err_sq += err * err;
  }
  const double mean_err = err_sum / windows;
  const double rms = std::sqrt(err_sq / windows);
  EXPECT_LT(std::abs(mean_err), 4 * rms / std::sqrt(windows) + 0.5);
}

TEST_F(SampledIndexTest, SameSeedSameLayoutAndUnknownKeys) {
  auto again = SampledIndex::Build(*table_, index_->options());
  ASSERT_TRUE(again.ok());
  std::string_view key[] = {"A"};
  StrataWindow a, b;
  index_->Window(index_->FindGroup(key), INT64_MIN, INT64_MAX, &a);
  (*again)->Window((*again)->FindGroup(key), INT64_MIN, INT64_MAX, &b);
  for (int s = 0; s < kNumStrata; ++s) {
    EXPECT_EQ(a.lo[s], b.lo[s]);
    EXPECT_EQ(a.hi[s], b.hi[s]);
  }
  std::string_view unknown[] = {"ZZZ"};
  EXPECT_EQ(index_->FindGroup(unknown), -1);
  auto bad = SampledIndex::Build(*table_, {.key_columns = {"nope"}});
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
}

TEST_F(SampledIndexTest, TableWideIndexHasOneGroup) {
  auto all = SampledIndex::Build(*table_, {.value_columns = {"delay"}, .seed = 1});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)->num_groups(), 1);
  StrataWindow w;
  (*all)->Window(0, INT64_MIN, INT64_MAX, &w);
  EXPECT_EQ(w.TotalRows(), 60000);
}

// A one-group table of `values` (one row per minute) indexed on column v.
std::unique_ptr<SampledIndex> IndexOf(const std::vector<double>& values,
                                      std::unique_ptr<Table>* table_out,
                                      double fraction = kOutlierFraction) {
  TableSchema schema{.name = "t",
                     .columns = {{"t", ColumnType::kTimestamp}, {"v", ColumnType::kDouble}},
                     .time_column = "t"};
  std::vector<Column> cols(2);
  cols[0].name = "t";
  cols[0].type = ColumnType::kTimestamp;
  cols[1].name = "v";
  cols[1].type = ColumnType::kDouble;
  for (size_t i = 0; i < values.size(); ++i) cols[0].ints.push_back(60 * static_cast<int64_t>(i));
  cols[1].doubles = values;
  *table_out =
      std::make_unique<Table>(schema, std::move(cols), static_cast<int64_t>(values.size()));
  auto index = SampledIndex::Build(
      **table_out, {.value_columns = {"v"}, .seed = 5, .outlier_fraction = fraction});
  EXPECT_TRUE(index.ok());
  return std::move(*index);
}

// The exact cell's values inside the whole history.
std::vector<double> ExactCellValues(const SampledIndex& index) {
  StrataWindow w;
  index.Window(0, INT64_MIN, INT64_MAX, &w);
  std::vector<double> out;
  for (uint32_t p = w.lo[kExactCell]; p < w.hi[kExactCell]; ++p) out.push_back(index.values(0)[p]);
  return out;
}

TEST(OutlierIndexTest, RareJumpsGoToTheExactCell) {
  // 1 row in 10,000 at 1,000x the typical magnitude: every jump is read exactly, none is left
  // to the sampling lottery, and the rest's range stops below the jumps.
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(10.0, 2.0);
  std::vector<double> values(200000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = i % 10000 == 77 ? 10000.0 : normal(rng);
  std::unique_ptr<Table> table;
  auto index = IndexOf(values, &table);
  const std::vector<double> exact = ExactCellValues(*index);
  EXPECT_EQ(std::count(exact.begin(), exact.end(), 10000.0), 20);
  EXPECT_LE(exact.size(), 200000 * kOutlierFraction);
  EXPECT_LT(index->RestMax(0, 0), 100.0);
}

TEST(OutlierIndexTest, NormalDataKeepsAlmostEverythingSampled) {
  std::mt19937_64 rng(12);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> values(100000);
  for (double& v : values) v = normal(rng);
  std::unique_ptr<Table> table;
  auto index = IndexOf(values, &table);
  // 5 MADs = 3.37 sigma: 0.075 % of a normal column.
  EXPECT_LT(index->exact_rows(), 150);
}

TEST(OutlierIndexTest, BudgetSplitsTowardsTheHeavierEnd) {
  // A right-skewed column with more candidates than the budget: the budget goes to the high
  // end (where the variance is), the budget is respected, and every exact row is beyond every
  // rest row on its side.
  std::mt19937_64 rng(13);
  std::lognormal_distribution<double> lognormal(0.0, 2.0);
  std::vector<double> values(50000);
  for (double& v : values) v = lognormal(rng);
  std::unique_ptr<Table> table;
  auto index = IndexOf(values, &table);
  const std::vector<double> exact = ExactCellValues(*index);
  EXPECT_EQ(exact.size(), 500u);
  for (double v : exact) EXPECT_GE(v, index->RestMax(0, 0));
}

TEST(OutlierIndexTest, NearConstantColumnAndDisabledIndex) {
  // 99.9 % zeros (MAD = 0): the rare values are all exact. With the index disabled, nothing is.
  std::vector<double> values(20000, 0.0);
  for (size_t i = 0; i < values.size(); i += 1000) values[i] = 5.0 + static_cast<double>(i % 7);
  std::unique_ptr<Table> table;
  auto index = IndexOf(values, &table);
  EXPECT_EQ(index->exact_rows(), 20);
  EXPECT_EQ(index->RestMin(0, 0), 0.0);
  EXPECT_EQ(index->RestMax(0, 0), 0.0);
  std::unique_ptr<Table> table2;
  auto plain = IndexOf(values, &table2, 0.0);
  EXPECT_EQ(plain->exact_rows(), 0);
  EXPECT_EQ(plain->RestMax(0, 0), 11.0);
}

TEST(SampledIndexKeysTest, MultiColumnKeysMatchBruteForce) {
  // Three string columns with 3, 4 and 5 values; every combination's rows counted by brute
  // force must match the index's groups for two and three key columns.
  std::mt19937 rng(7);
  std::vector<Column> cols(3);
  const int sizes[3] = {3, 4, 5};
  const int64_t n = 6000;
  for (int k = 0; k < 3; ++k) {
    cols[k].name = std::string(1, static_cast<char>('a' + k));
    cols[k].type = ColumnType::kString;
    for (int v = 0; v < sizes[k]; ++v) cols[k].dictionary.push_back(cols[k].name + std::to_string(v));
    for (int64_t r = 0; r < n; ++r) cols[k].codes.push_back(static_cast<int32_t>(rng() % sizes[k]));
  }
  cols[2].codes[0] = 4;  // (a, b, c4) exists for at least one row; (x, y, c4) may not for others
  TableSchema schema{.name = "t", .time_column = ""};
  for (const Column& c : cols) schema.columns.push_back({c.name, c.type});
  Table table(schema, cols, n);
  auto two = SampledIndex::Build(table, {.key_columns = {"a", "b"}, .seed = 3});
  auto three = SampledIndex::Build(table, {.key_columns = {"a", "b", "c"}, .seed = 3});
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  ASSERT_TRUE(three.ok()) << three.status().ToString();
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 4; ++b) {
      int64_t rows_ab = 0;
      for (int c = 0; c < 5; ++c) {
        int64_t rows = 0;
        for (int64_t r = 0; r < n; ++r) {
          rows += cols[0].codes[r] == a && cols[1].codes[r] == b && cols[2].codes[r] == c;
        }
        rows_ab += rows;
        std::string_view k3[] = {cols[0].dictionary[a], cols[1].dictionary[b], cols[2].dictionary[c]};
        const int g = (*three)->FindGroup(k3);
        ASSERT_EQ(g >= 0, rows > 0);
        if (rows == 0) continue;
        StrataWindow w;
        (*three)->Window(g, INT64_MIN, INT64_MAX, &w);
        EXPECT_EQ(w.RowsIn(0, kNumStrata), rows) << a << b << c;
      }
      std::string_view k2[] = {cols[0].dictionary[a], cols[1].dictionary[b]};
      StrataWindow w;
      (*two)->Window((*two)->FindGroup(k2), INT64_MIN, INT64_MAX, &w);
      EXPECT_EQ(w.RowsIn(0, kNumStrata), rows_ab);
    }
  }
  std::string_view unknown[] = {"a0", "b0", "c9"};
  EXPECT_EQ((*three)->FindGroup(unknown), -1);
  auto four = SampledIndex::Build(table, {.key_columns = {"a", "b", "c", "a"}});
  EXPECT_EQ(four.status().code(), StatusCode::kInvalidArgument);
}

TEST(OutlierIndexTest, WindowRestRangeBoundsTheWindowAndFollowsDrift) {
  // A column that drifts over time: the rest range near a window is a bound for every sampled
  // value inside it, and much tighter than the whole history's range.
  std::mt19937_64 rng(14);
  std::normal_distribution<double> noise(0.0, 0.01);
  std::vector<double> values(100000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 1.0 + 1e-5 * i + noise(rng);
  std::unique_ptr<Table> table;
  auto index = IndexOf(values, &table);
  for (int64_t begin : {0, 20000, 77777}) {
    const int64_t t0 = 60 * begin, t1 = 60 * (begin + 3000);
    const auto [lo, hi] = index->RestRange(0, 0, t0, t1);
    StrataWindow w;
    index->Window(0, t0, t1, &w);
    for (int s = 0; s < kNumStrata; ++s) {
      for (uint32_t p = w.lo[s]; p < w.hi[s]; ++p) {
        EXPECT_GE(index->values(0)[p], lo);
        EXPECT_LE(index->values(0)[p], hi);
      }
    }
    EXPECT_LT(hi - lo, 0.2 * (index->RestMax(0, 0) - index->RestMin(0, 0)));
  }
  const auto [all_lo, all_hi] = index->RestRange(0, 0, INT64_MIN, INT64_MAX);
  EXPECT_EQ(all_lo, index->RestMin(0, 0));
  EXPECT_EQ(all_hi, index->RestMax(0, 0));
}

}  // namespace
}  // namespace apx::store

namespace apx::store {
namespace {

// A table of FlightSchema() with the given rows (origin strings may hold any bytes).
std::unique_ptr<Table> FlightRows(const std::vector<std::tuple<int64_t, double, std::string>>& rows) {
  const TableSchema schema = FlightSchema();
  std::vector<Column> cols(3);
  for (size_t i = 0; i < 3; ++i) {
    cols[i].name = schema.columns[i].name;
    cols[i].type = schema.columns[i].type;
  }
  for (const auto& [t, d, o] : rows) {
    cols[0].ints.push_back(t);
    cols[1].doubles.push_back(d);
    auto it = std::find(cols[2].dictionary.begin(), cols[2].dictionary.end(), o);
    cols[2].codes.push_back(static_cast<int32_t>(it - cols[2].dictionary.begin()));
    if (it == cols[2].dictionary.end()) cols[2].dictionary.push_back(o);
  }
  for (Column& c : cols) c.IndexDictionary();
  return std::make_unique<Table>(schema, std::move(cols), static_cast<int64_t>(rows.size()));
}

TEST(AppendLogTest, ReplaysEveryRecordExactlyAndConcatSortsByTime) {
  const std::string path = TempPath("roundtrip.apxlog");
  std::filesystem::remove(path);
  AppendLog log(path, FlightSchema());
  auto none = log.Replay();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(std::filesystem::exists(path));  // created by the first append only
  const std::string odd("a\nb\"c,\0\xff", 9);
  ASSERT_TRUE(log.Append(*FlightRows({{300, 1.5, "ATL"}, {100, -0.1, odd}})).ok());
  ASSERT_TRUE(log.Append(*FlightRows({{200, 1e300, "ORD"}})).ok());
  auto replayed = log.Replay();
  ASSERT_TRUE(replayed.ok()) << replayed.status().message();
  ASSERT_EQ(replayed->size(), 2u);
  const Table& first = *(*replayed)[0];
  ASSERT_EQ(first.num_rows(), 2);
  EXPECT_EQ(first.columns()[0].ints[1], 100);
  EXPECT_EQ(first.columns()[1].doubles[1], -0.1);
  EXPECT_EQ(first.columns()[2].dictionary[first.columns()[2].codes[1]], odd);
  // Concatenated onto a base table: dictionaries merged, rows sorted by time.
  auto base = FlightRows({{150, 7.0, "ORD"}});
  auto all = ConcatTables(*base, *replayed);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ((*all)->num_rows(), 4);
  const Column& t = (*all)->columns()[0];
  const Column& o = (*all)->columns()[2];
  EXPECT_EQ(std::vector<int64_t>(t.ints.begin(), t.ints.end()), (std::vector<int64_t>{100, 150, 200, 300}));
  EXPECT_EQ(o.dictionary[o.codes[0]], odd);
  EXPECT_EQ(o.dictionary[o.codes[1]], "ORD");
  EXPECT_EQ(o.codes[1], o.codes[2]);  // one code for ORD from both tables
  EXPECT_EQ((*all)->columns()[1].doubles[2], 1e300);
  // Another schema is refused, by Append and by ConcatTables.
  TableSchema other = FlightSchema();
  other.columns[1].type = ColumnType::kInt64;
  AppendLog wrong(path, other);
  EXPECT_FALSE(wrong.Append(*FlightRows({{1, 1, "x"}})).ok());
}

TEST(AppendLogTest, TornTailIsDroppedAndCutOffDamageBeforeTheEndIsDataLoss) {
  const std::string path = TempPath("torn.apxlog");
  std::filesystem::remove(path);
  AppendLog log(path, FlightSchema());
  ASSERT_TRUE(log.Append(*FlightRows({{1, 1.0, "A"}})).ok());
  const auto good_size = std::filesystem::file_size(path);
  for (int64_t tear : {2, 15, 30}) {  // inside the header, at its end, inside the payload
    log.set_tear_next_for_testing(tear);
    EXPECT_EQ(log.Append(*FlightRows({{2, 2.0, "B"}})).code(), StatusCode::kIoError);
    auto replayed = log.Replay();
    ASSERT_TRUE(replayed.ok()) << replayed.status().message();
    EXPECT_EQ(replayed->size(), 1u) << tear;
    EXPECT_EQ(std::filesystem::file_size(path), good_size) << tear;  // the torn record is cut off
  }
  // A torn record left by a writer that died, then an append without a replay in between (a
  // second process, or this one after the other's crash): the torn bytes are cut first.
  log.set_tear_next_for_testing(30);
  EXPECT_FALSE(log.Append(*FlightRows({{2, 2.0, "B"}})).ok());
  AppendLog other(path, FlightSchema());
  ASSERT_TRUE(other.Append(*FlightRows({{3, 3.0, "C"}})).ok());
  auto replayed = log.Replay();
  ASSERT_TRUE(replayed.ok()) << replayed.status().message();
  ASSERT_EQ(replayed->size(), 2u);
  EXPECT_EQ((*replayed)[1]->columns()[0].ints[0], 3);
  const auto two_records = std::filesystem::file_size(path);
  auto flip = [&](std::streamoff at) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(at);
    const char c = static_cast<char>(f.get());
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x5a));
  };
  // A flipped byte in the first record's payload, or in its length field, with a valid record
  // after it: DataLoss, never a silent skip or a cut.
  for (std::streamoff at : {std::streamoff{30}, std::streamoff{5}}) {
    flip(at);
    auto damaged = log.Replay();
    ASSERT_FALSE(damaged.ok()) << at;
    EXPECT_EQ(damaged.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(damaged.status().message().find("at byte 0"), std::string::npos) << damaged.status().message();
    EXPECT_EQ(std::filesystem::file_size(path), two_records);  // nothing cut
    flip(at);
  }
  // A write that fails is taken back: the log still holds exactly the acknowledged records.
  ASSERT_TRUE(log.Replay().ok());
}

TEST(AppendLogTest, RecordsDecodeByColumnName) {
  // The spec's columns listed in another order, or the rows' columns in another order: every
  // value lands in its own column. A column the records lack is DataLoss naming it.
  const std::string path = TempPath("names.apxlog");
  std::filesystem::remove(path);
  AppendLog log(path, FlightSchema());
  ASSERT_TRUE(log.Append(*FlightRows({{7, 2.5, "ORD"}})).ok());
  TableSchema reordered = FlightSchema();
  std::reverse(reordered.columns.begin(), reordered.columns.end());
  auto replayed = AppendLog(path, reordered).Replay();
  ASSERT_TRUE(replayed.ok()) << replayed.status().message();
  const Table& t = *(*replayed)[0];
  EXPECT_EQ((*t.column("dep_time"))->ints[0], 7);
  EXPECT_EQ((*t.column("delay"))->doubles[0], 2.5);
  EXPECT_EQ((*t.column("origin"))->dictionary[0], "ORD");
  TableSchema wider = FlightSchema();
  wider.columns.push_back({"dest", ColumnType::kString});
  auto missing = AppendLog(path, wider).Replay();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("no column 'dest'"), std::string::npos) << missing.status().message();
  // NaN never reaches the log.
  EXPECT_EQ(log.Append(*FlightRows({{8, std::nan(""), "ORD"}})).code(), StatusCode::kInvalidArgument);
}

TEST(AppendLogTest, AcknowledgedAppendsSurviveKill9) {
  // A child appends records and reports each acknowledged one on a pipe; the parent kills it
  // with SIGKILL mid-stream. Every acknowledged record must replay, whole.
  const std::string path = TempPath("kill9.apxlog");
  std::filesystem::remove(path);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    AppendLog log(path, FlightSchema());
    std::vector<std::tuple<int64_t, double, std::string>> rows;
    for (int i = 0; i < 50; ++i) rows.emplace_back(i, i * 0.5, "K" + std::to_string(i % 7));
    for (uint32_t n = 1;; ++n) {
      if (!log.Append(*FlightRows(rows)).ok()) ::_exit(1);
      if (::write(fds[1], &n, sizeof n) != sizeof n) ::_exit(1);
    }
  }
  ::close(fds[1]);
  uint32_t acked = 0, n = 0;
  while (acked < 40 && ::read(fds[0], &n, sizeof n) == sizeof n) acked = n;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  while (::read(fds[0], &n, sizeof n) == sizeof n) acked = n;  // acks written before the kill
  ::close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GE(acked, 40u);
  AppendLog log(path, FlightSchema());
  auto replayed = log.Replay();
  ASSERT_TRUE(replayed.ok()) << replayed.status().message();
  EXPECT_GE(replayed->size(), acked);
  EXPECT_LE(replayed->size(), acked + 1);  // at most the one being acknowledged when killed
  for (const auto& t : *replayed) {
    ASSERT_EQ(t->num_rows(), 50);
    EXPECT_EQ(t->columns()[1].doubles[49], 24.5);
  }
}

}  // namespace
}  // namespace apx::store
