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
// Thread safety: immutable after Build(); const methods may be called concurrently.
#ifndef APX_STORE_SAMPLED_INDEX_H_
#define APX_STORE_SAMPLED_INDEX_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "store/layout.h"
#include "store/table.h"

namespace apx::store {

// Most key columns one index supports (several columns must all be string columns).
inline constexpr size_t kMaxKeyColumns = 3;

struct SampledIndexOptions {
  std::vector<std::string> key_columns;    // at most kMaxKeyColumns; string (or one int64) columns
  std::vector<std::string> value_columns;  // numeric columns copied in layout order
  uint64_t seed = 0;                       // stratum assignment seed
};

// Row positions [lo[s], hi[s]) of one group's rows inside a time window, per stratum.
struct StrataWindow {
  uint32_t lo[kNumStrata];
  uint32_t hi[kNumStrata];
  // Rows in strata [0, num_strata).
  int64_t RowsIn(int s_begin, int s_end) const {
    int64_t rows = 0;
    for (int s = s_begin; s < s_end; ++s) rows += hi[s] - lo[s];
    return rows;
  }
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
  // the table has no time column). REQUIRES: 0 <= group < num_groups().
  void Window(int group, int64_t t0, int64_t t1, StrataWindow* window) const;

  // Index of a value column in options().value_columns, or -1.
  int ValueIndex(std::string_view column) const;
  // Values of value column `value_idx`, in layout order (valid as long as the index).
  const double* values(int value_idx) const { return values_[value_idx].data(); }
  const int64_t* times() const { return times_.data(); }

 private:
  SampledIndexOptions options_;
  bool has_time_ = false;
  std::vector<const Column*> key_cols_;
  std::vector<uint64_t> radix_;  // per key column, for multi-column keys
  std::unordered_map<uint64_t, int32_t> group_of_key_;
  std::vector<uint32_t> cell_begin_;   // (group * kNumStrata + stratum) -> first row; +1 sentinel
  std::vector<uint32_t> group_begin_;  // group -> first row; +1 sentinel
  std::vector<int64_t> times_;
  std::vector<std::vector<double>> values_;
};

}  // namespace apx::store

#endif  // APX_STORE_SAMPLED_INDEX_H_
