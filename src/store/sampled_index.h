// store/sampled_index.h
//
// A sampled layout (projection) of one table for one set of filter keys (DESIGN §4): rows are
// clustered by key group, every group is split into kNumStrata random strata (each row's
// stratum drawn from a seeded RNG), and rows stay time-sorted inside a stratum. The needed
// columns are copied in that order, so that
//   - strata 0..k-1 of a group are a uniform random sample (ratio k / kNumStrata) of the
//     group's rows, and of any time window of them;
//   - a time window is found in each stratum by binary search;
//   - growing the sample from k to k' strata reads only the rows of strata k..k'-1.
// An index with no key columns has one group: the whole table (network-wide queries).
//
// Outlier index (Chaudhuri, Das, Datar, Motwani, Narasayya, "Overcoming Limitations of
// Sampling for Aggregation Queries", ICDE 2001). Rows that dominate a group's variance would
// be left to the sampling lottery otherwise: a 5 % sample misses a handful of extreme rows
// most of the time, and its standard error is then far too small. So every group also has an
// EXACT cell (index kExactCell, after the kNumStrata strata) holding, per value column, the
// rows that lie more than kOutlierMadFactor median absolute deviations from the group's
// median, at most kOutlierFraction of the group's rows per column; when there are more such
// rows, the budget is split between the low and the high end so that the variance of the
// remaining rows is smallest (the paper's rule). Readers read the exact cell whole and the
// strata as a sample of the REST of the rows; the estimators combine the two. The exact cell
// is the union over the layout's value columns, so for one column it may also hold ordinary
// rows (outliers of another column): that is still exact part + sampled rest. Every value of
// the rest lies in the group's rest range [RestMin, RestMax] of that column.
//
// Thread safety: immutable after Build(); const methods may be called concurrently.
#ifndef APX_STORE_SAMPLED_INDEX_H_
#define APX_STORE_SAMPLED_INDEX_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "store/layout.h"
#include "store/table.h"

namespace apx::store {

// Most key columns one index supports (several columns must all be string columns).
inline constexpr size_t kMaxKeyColumns = 3;

// The group's exact (outlier) cell comes after its kNumStrata sample strata.
inline constexpr int kExactCell = kNumStrata;
inline constexpr int kCellsPerGroup = kNumStrata + 1;

// Time buckets per group for the window-local rest range (SampledIndex::RestRange), and the
// fewest rows a bucket gets.
inline constexpr int kRangeBuckets = 256;
inline constexpr int kRangeBucketMinRows = 32;

// Outlier index defaults (see the header comment): a row is an outlier candidate of a column
// when |x − median| > kOutlierMadFactor · MAD (MAD = 0: any value other than the median), and
// at most kOutlierFraction of a group's rows per column go to the exact cell. 5 MADs is 3.4
// standard deviations of a normal column (0.07 % of its rows); the 1 % budget bounds what
// every request reads exactly.
inline constexpr double kOutlierMadFactor = 5.0;
inline constexpr double kOutlierFraction = 0.01;

struct SampledIndexOptions {
  std::vector<std::string> key_columns;    // at most kMaxKeyColumns; string (or one int64) columns
  std::vector<std::string> value_columns;  // numeric columns copied in layout order
  uint64_t seed = 0;                       // stratum assignment seed
  // Outlier index: at most this fraction of a group's rows per value column go to the exact
  // cell (0 disables the outlier index: every row is sampled).
  double outlier_fraction = kOutlierFraction;
  double outlier_mad_factor = kOutlierMadFactor;
  // Value columns whose distinct values per group are counted (RestDistinct; -1 for others).
  std::vector<std::string> distinct_columns;
};

// Row positions [lo[c], hi[c]) of one group's rows inside a time window, per cell: the
// kNumStrata sample strata, then the exact cell (kExactCell).
struct StrataWindow {
  uint32_t lo[kCellsPerGroup];
  uint32_t hi[kCellsPerGroup];
  // Rows in strata [s_begin, s_end) (sample strata only; the exact cell is ExactRows()).
  int64_t RowsIn(int s_begin, int s_end) const {
    int64_t rows = 0;
    for (int s = s_begin; s < s_end; ++s) rows += hi[s] - lo[s];
    return rows;
  }
  // Rows of the exact cell inside the window.
  int64_t ExactRows() const { return hi[kExactCell] - lo[kExactCell]; }
  // Every row inside the window: the sample strata and the exact cell.
  int64_t TotalRows() const { return RowsIn(0, kNumStrata) + ExactRows(); }
};

class SampledIndex {
 public:
  // Builds the layout. InvalidArgument when a column is missing or has the wrong type.
  static Result<std::unique_ptr<SampledIndex>> Build(const Table& table,
                                                      const SampledIndexOptions& options);

  const SampledIndexOptions& options() const { return options_; }
  int num_groups() const { return static_cast<int>(group_begin_.size()) - 1; }
  int64_t num_rows() const { return static_cast<int64_t>(times_.size()); }

  // The group of the key whose column values are `key_values` (text, one per key column), or
  // -1 when no row has that key. REQUIRES: key_values.size() == key_columns.size().
  int FindGroup(std::span<const std::string_view> key_values) const;

  // Fills `window` with the rows of `group` whose time is in [t0, t1) (the whole group when
  // the table has no time column), per sample stratum and for the exact cell.
  // REQUIRES: 0 <= group < num_groups().
  void Window(int group, int64_t t0, int64_t t1, StrataWindow* window) const;

  // Index of a value column in options().value_columns, or -1.
  int ValueIndex(std::string_view column) const;
  // Values of value column `value_idx`, in layout order (valid as long as the index).
  const double* values(int value_idx) const { return values_[value_idx].data(); }
  const int64_t* times() const { return times_.data(); }
  // Range of value column `value_idx` over the rows of `group` that are NOT in the exact cell
  // (every sampled row lies in it). NaN when the group has no such row.
  double RestMin(int group, int value_idx) const {
    return rest_range_[(static_cast<size_t>(group) * values_.size() + value_idx) * 2];
  }
  double RestMax(int group, int value_idx) const {
    return rest_range_[(static_cast<size_t>(group) * values_.size() + value_idx) * 2 + 1];
  }
  // Range of value column `value_idx` over the rest rows of `group` whose time may lie in
  // [t0, t1): a bound for every sampled value of that window, much tighter than the group's
  // whole range when the column drifts over time. The group's rows are split into time
  // buckets of equal row counts (at most kRangeBuckets) with the rest's min/max each; the
  // buckets that can hold rows of the window are combined. {NaN, NaN} when none holds a rest
  // row.
  std::pair<double, double> RestRange(int group, int value_idx, int64_t t0, int64_t t1) const;

  // Distinct values of value column `value_idx` over the rows of `group` that are NOT in the
  // exact cell (over the whole history: a bound for any window of them); -1 unless the column
  // is in options().distinct_columns.
  int64_t RestDistinct(int group, int value_idx) const {
    return rest_distinct_[static_cast<size_t>(group) * values_.size() + value_idx];
  }
  // Rows of all groups in exact cells (a test and diagnostics hook).
  int64_t exact_rows() const { return exact_rows_; }

 private:
  SampledIndexOptions options_;
  bool has_time_ = false;
  std::vector<const Column*> key_cols_;
  std::vector<uint64_t> radix_;  // per key column, for multi-column keys
  std::unordered_map<uint64_t, int32_t> group_of_key_;
  std::vector<uint32_t> cell_begin_;   // (group * kCellsPerGroup + cell) -> first row; +1 sentinel
  std::vector<uint32_t> group_begin_;  // group -> first row; +1 sentinel
  std::vector<int64_t> times_;
  std::vector<std::vector<double>> values_;
  std::vector<double> rest_range_;  // (group, value column) -> {min, max} of the rest
  std::vector<uint32_t> bucket_begin_;  // group -> its first time bucket; +1 sentinel
  std::vector<int64_t> bucket_start_;   // bucket -> time of its first row
  std::vector<double> bucket_range_;    // (bucket, value column) -> {min, max} of the rest
  std::vector<int64_t> rest_distinct_;  // (group, value column) -> distinct values of the rest
  int64_t exact_rows_ = 0;
};

}  // namespace apx::store

#endif  // APX_STORE_SAMPLED_INDEX_H_
