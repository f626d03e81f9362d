#include "store/sampled_index.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

namespace apx::store {
namespace {

// Key part of one row of one key column: dictionary code (string) or the value (int64).
inline uint64_t KeyPart(const Column& c, size_t row) {
  return c.type == ColumnType::kString ? static_cast<uint32_t>(c.codes[row])
                                       : static_cast<uint64_t>(c.ints[row]);
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Values MarkOutliers estimates a group's median and MAD from (all of a smaller group).
constexpr size_t kOutlierSubsample = 8192;

// Reused buffers of MarkOutliers.
struct OutlierScratch {
  std::vector<double> values;
  std::vector<double> deviations;
  std::vector<std::pair<double, uint32_t>> low, high;  // (value − median, row)
  std::vector<double> low_sum, low_sq, high_sum, high_sq;  // prefix sums, most extreme first
};

// Marks the outliers of column `c` among one group's `rows` in `is_outlier` (ICDE 2001 outlier
// index): candidates lie more than mad_factor·MAD from the median (MAD = 0: any value other
// than the median); when there are more than fraction·|rows| of them, the budget K is split
// into the k_low smallest and K − k_low largest candidates so that the variance of the rows
// left is smallest (a scan over the split with prefix sums, values centred on the median).
void MarkOutliers(const Column& c, std::span<const uint32_t> rows, double fraction,
                  double mad_factor, OutlierScratch* scratch, std::vector<uint8_t>* is_outlier) {
  const size_t m = rows.size();
  const size_t budget = static_cast<size_t>(std::floor(fraction * static_cast<double>(m)));
  if (budget == 0) return;
  std::vector<double>& values = scratch->values;
  values.resize(m);
  for (size_t k = 0; k < m; ++k) values[k] = c.AsDouble(rows[k]);
  // Median and MAD, from an evenly spaced subsample of large groups (the threshold needs no
  // more precision, and two selections over every row of a 40 M-row table cost seconds).
  std::vector<double>& dev = scratch->deviations;
  const size_t stride = std::max<size_t>(1, m / kOutlierSubsample);
  dev.clear();
  for (size_t k = 0; k < m; k += stride) dev.push_back(values[k]);
  const size_t mid = dev.size() / 2;
  std::nth_element(dev.begin(), dev.begin() + mid, dev.end());
  const double median = dev[mid];
  for (double& d : dev) d = std::abs(d - median);
  std::nth_element(dev.begin(), dev.begin() + mid, dev.end());
  const double threshold = mad_factor * dev[mid];
  auto& low = scratch->low;
  auto& high = scratch->high;
  low.clear();
  high.clear();
  double total = 0, total_sq = 0;  // over the group, centred on the median
  for (size_t k = 0; k < m; ++k) {
    const double d = values[k] - median;
    total += d;
    total_sq += d * d;
    if (d < -threshold) low.emplace_back(d, rows[k]);
    if (d > threshold) high.emplace_back(d, rows[k]);
  }
  if (low.size() + high.size() <= budget) {
    for (const auto& [d, row] : low) (*is_outlier)[row] = 1;
    for (const auto& [d, row] : high) (*is_outlier)[row] = 1;
    return;
  }
  std::sort(low.begin(), low.end());                                   // most negative first
  std::sort(high.begin(), high.end(), std::greater<>());               // most positive first
  auto prefix = [](const auto& side, std::vector<double>* sum, std::vector<double>* sq) {
    sum->assign(side.size() + 1, 0.0);
    sq->assign(side.size() + 1, 0.0);
    for (size_t k = 0; k < side.size(); ++k) {
      (*sum)[k + 1] = (*sum)[k] + side[k].first;
      (*sq)[k + 1] = (*sq)[k] + side[k].first * side[k].first;
    }
  };
  prefix(low, &scratch->low_sum, &scratch->low_sq);
  prefix(high, &scratch->high_sum, &scratch->high_sq);
  const double left = static_cast<double>(m - budget);
  size_t best_low = 0;
  double best_var = INFINITY;
  const size_t from = budget > high.size() ? budget - high.size() : 0;
  for (size_t k_low = from; k_low <= std::min(budget, low.size()); ++k_low) {
    const size_t k_high = budget - k_low;
    const double sum = total - scratch->low_sum[k_low] - scratch->high_sum[k_high];
    const double sq = total_sq - scratch->low_sq[k_low] - scratch->high_sq[k_high];
    const double var = sq / left - (sum / left) * (sum / left);
    if (var < best_var) {
      best_var = var;
      best_low = k_low;
    }
  }
  for (size_t k = 0; k < best_low; ++k) (*is_outlier)[low[k].second] = 1;
  for (size_t k = 0; k < budget - best_low; ++k) (*is_outlier)[high[k].second] = 1;
}

}  // namespace

Result<std::unique_ptr<SampledIndex>> SampledIndex::Build(const Table& table,
                                                          const SampledIndexOptions& options) {
  auto index = std::make_unique<SampledIndex>();
  index->options_ = options;
  if (options.key_columns.size() > kMaxKeyColumns) {
    return Status::InvalidArgument("table '" + table.name() + "': at most " +
                                   std::to_string(kMaxKeyColumns) +
                                   " key columns per query are supported");
  }
  for (const std::string& name : options.key_columns) {
    APX_ASSIGN_OR_RETURN(const Column* c, table.column(name));
    if (c->type != ColumnType::kString && c->type != ColumnType::kInt64) {
      return Status::InvalidArgument("table '" + table.name() + "': key column '" + name +
                                     "' must be a string or int64 column");
    }
    if (options.key_columns.size() > 1 && c->type == ColumnType::kInt64) {
      return Status::InvalidArgument("table '" + table.name() + "': key column '" + name +
                                     "' must be a string column in a multi-column key");
    }
    index->key_cols_.push_back(c);
  }
  // A multi-column key packs the dictionary codes in mixed radix (radix = dictionary size).
  index->radix_.assign(index->key_cols_.size(), 0);
  if (index->key_cols_.size() > 1) {
    unsigned __int128 product = 1;
    for (size_t k = 0; k < index->key_cols_.size(); ++k) {
      index->radix_[k] = std::max<uint64_t>(1, index->key_cols_[k]->dictionary.size());
      product *= index->radix_[k];
    }
    if (product > static_cast<unsigned __int128>(UINT64_MAX)) {
      return Status::InvalidArgument("table '" + table.name() +
                                     "': too many distinct key combinations for one index");
    }
  }
  std::vector<const Column*> value_cols;
  for (const std::string& name : options.value_columns) {
    APX_ASSIGN_OR_RETURN(const Column* c, table.column(name));
    if (c->type == ColumnType::kString) {
      return Status::InvalidArgument("table '" + table.name() + "': column '" + name +
                                     "' is a string column and cannot be aggregated");
    }
    value_cols.push_back(c);
  }
  const Column* time = table.time_column();
  index->has_time_ = time != nullptr;

  // Group id of every row.
  const size_t n = static_cast<size_t>(table.num_rows());
  std::vector<uint32_t> group(n, 0);
  int32_t num_groups = index->key_cols_.empty() ? 1 : 0;
  if (!index->key_cols_.empty()) {
    for (size_t row = 0; row < n; ++row) {
      uint64_t key = KeyPart(*index->key_cols_[0], row);
      for (size_t k = 1; k < index->key_cols_.size(); ++k) {
        key = key * index->radix_[k] + KeyPart(*index->key_cols_[k], row);
      }
      auto [it, inserted] = index->group_of_key_.try_emplace(key, num_groups);
      if (inserted) ++num_groups;
      group[row] = static_cast<uint32_t>(it->second);
    }
  }

  // Rows of every group (ascending row order), for the outlier index.
  std::vector<uint32_t> group_row_begin(static_cast<size_t>(num_groups) + 1, 0);
  for (size_t row = 0; row < n; ++row) ++group_row_begin[group[row] + 1];
  for (int32_t g = 0; g < num_groups; ++g) group_row_begin[g + 1] += group_row_begin[g];
  std::vector<uint32_t> group_rows(n);
  {
    std::vector<uint32_t> fill(group_row_begin.begin(), group_row_begin.end() - 1);
    for (size_t row = 0; row < n; ++row) group_rows[fill[group[row]]++] = static_cast<uint32_t>(row);
  }
  std::vector<uint8_t> is_outlier(n, 0);
  if (options.outlier_fraction > 0) {
    OutlierScratch scratch;
    for (const Column* c : value_cols) {
      for (int32_t g = 0; g < num_groups; ++g) {
        const std::span<const uint32_t> rows(group_rows.data() + group_row_begin[g],
                                             group_row_begin[g + 1] - group_row_begin[g]);
        MarkOutliers(*c, rows, options.outlier_fraction, options.outlier_mad_factor, &scratch,
                     &is_outlier);
      }
    }
  }

  // Random stratum of every row (outliers go to their group's exact cell), then a stable
  // counting sort by (group, cell): rows keep their time order inside a cell.
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int> stratum_of(0, kNumStrata - 1);
  std::vector<uint32_t> cell(n);
  const size_t num_cells = static_cast<size_t>(num_groups) * kCellsPerGroup;
  std::vector<uint32_t> begin(num_cells + 1, 0);
  for (size_t row = 0; row < n; ++row) {
    const int stratum = stratum_of(rng);  // drawn for every row: the layout stays seed-stable
    cell[row] = group[row] * kCellsPerGroup +
                static_cast<uint32_t>(is_outlier[row] ? kExactCell : stratum);
    ++begin[cell[row] + 1];
    index->exact_rows_ += is_outlier[row];
  }
  for (size_t c = 0; c < num_cells; ++c) begin[c + 1] += begin[c];
  std::vector<uint32_t> next(begin.begin(), begin.end() - 1);
  std::vector<uint32_t> position(n);
  for (size_t row = 0; row < n; ++row) position[row] = next[cell[row]]++;

  // Time buckets of every group (equal row counts, in the group's time order) with the rest's
  // min/max per value column.
  index->bucket_begin_.assign(static_cast<size_t>(num_groups) + 1, 0);
  for (int32_t g = 0; g < num_groups; ++g) {
    const uint32_t rows_in_group = group_row_begin[g + 1] - group_row_begin[g];
    const uint32_t buckets = std::clamp<uint32_t>(rows_in_group / kRangeBucketMinRows, 1,
                                                  kRangeBuckets);
    index->bucket_begin_[g + 1] = index->bucket_begin_[g] + buckets;
  }
  const size_t total_buckets = index->bucket_begin_[num_groups];
  index->bucket_start_.assign(total_buckets, INT64_MIN);
  index->bucket_range_.assign(total_buckets * value_cols.size() * 2, kNaN);
  for (int32_t g = 0; g < num_groups; ++g) {
    const uint32_t first = group_row_begin[g];
    const uint32_t rows_in_group = group_row_begin[g + 1] - first;
    const uint32_t buckets = index->bucket_begin_[g + 1] - index->bucket_begin_[g];
    for (uint32_t b = 0; b < buckets; ++b) {
      const uint32_t lo = first + static_cast<uint32_t>(uint64_t{rows_in_group} * b / buckets);
      const uint32_t hi = first + static_cast<uint32_t>(uint64_t{rows_in_group} * (b + 1) / buckets);
      const size_t bucket = index->bucket_begin_[g] + b;
      if (time != nullptr && lo < hi) index->bucket_start_[bucket] = time->ints[group_rows[lo]];
      for (size_t v = 0; v < value_cols.size(); ++v) {
        double mn = INFINITY, mx = -INFINITY;
        for (uint32_t k = lo; k < hi; ++k) {
          const uint32_t row = group_rows[k];
          if (is_outlier[row]) continue;
          const double x = value_cols[v]->AsDouble(row);
          mn = std::min(mn, x);
          mx = std::max(mx, x);
        }
        if (mn <= mx) {
          index->bucket_range_[(bucket * value_cols.size() + v) * 2] = mn;
          index->bucket_range_[(bucket * value_cols.size() + v) * 2 + 1] = mx;
        }
      }
    }
  }

  // Range of every value column over each group's rest (its buckets' ranges combined) and,
  // for the count_distinct columns, the number of distinct values of the rest.
  index->rest_range_.assign(static_cast<size_t>(num_groups) * value_cols.size() * 2, kNaN);
  index->rest_distinct_.assign(static_cast<size_t>(num_groups) * value_cols.size(), -1);
  std::vector<double> rest_values;
  for (size_t v = 0; v < value_cols.size(); ++v) {
    const auto& wanted = options.distinct_columns;
    const bool distinct = std::find(wanted.begin(), wanted.end(), options.value_columns[v]) !=
                          wanted.end();
    for (int32_t g = 0; g < num_groups; ++g) {
      double lo = INFINITY, hi = -INFINITY;
      for (uint32_t b = index->bucket_begin_[g]; b < index->bucket_begin_[g + 1]; ++b) {
        const double mn = index->bucket_range_[(b * value_cols.size() + v) * 2];
        if (std::isnan(mn)) continue;
        lo = std::min(lo, mn);
        hi = std::max(hi, index->bucket_range_[(b * value_cols.size() + v) * 2 + 1]);
      }
      if (!(lo <= hi)) continue;
      const size_t cell = static_cast<size_t>(g) * value_cols.size() + v;
      index->rest_range_[cell * 2] = lo;
      index->rest_range_[cell * 2 + 1] = hi;
      if (!distinct) continue;
      rest_values.clear();
      for (uint32_t k = group_row_begin[g]; k < group_row_begin[g + 1]; ++k) {
        const uint32_t row = group_rows[k];
        if (!is_outlier[row]) rest_values.push_back(value_cols[v]->AsDouble(row));
      }
      std::sort(rest_values.begin(), rest_values.end());
      index->rest_distinct_[cell] = static_cast<int64_t>(
          std::unique(rest_values.begin(), rest_values.end()) - rest_values.begin());
    }
  }

  index->times_.resize(n, 0);
  if (time != nullptr) {
    for (size_t row = 0; row < n; ++row) index->times_[position[row]] = time->ints[row];
  }
  index->values_.resize(value_cols.size());
  for (size_t v = 0; v < value_cols.size(); ++v) {
    std::vector<double>& out = index->values_[v];
    out.resize(n);
    for (size_t row = 0; row < n; ++row) out[position[row]] = value_cols[v]->AsDouble(row);
  }
  index->cell_begin_ = std::move(begin);
  index->group_begin_.resize(static_cast<size_t>(num_groups) + 1);
  for (int32_t g = 0; g <= num_groups; ++g) {
    index->group_begin_[g] = index->cell_begin_[static_cast<size_t>(g) * kCellsPerGroup];
  }
  return index;
}

int SampledIndex::FindGroup(std::span<const std::string_view> key_values) const {
  if (key_cols_.empty()) return 0;
  if (key_values.size() != key_cols_.size()) return -1;
  uint64_t key = 0;
  for (size_t k = 0; k < key_cols_.size(); ++k) {
    const Column& c = *key_cols_[k];
    uint64_t part = 0;
    if (c.type == ColumnType::kString) {
      const int32_t code = c.FindCode(key_values[k]);
      if (code < 0) return -1;
      part = static_cast<uint32_t>(code);
    } else {
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(key_values[k].data(),
                                       key_values[k].data() + key_values[k].size(), v);
      if (ec != std::errc() || ptr != key_values[k].data() + key_values[k].size()) return -1;
      part = static_cast<uint64_t>(v);
    }
    key = k == 0 ? part : key * radix_[k] + part;
  }
  auto it = group_of_key_.find(key);
  return it == group_of_key_.end() ? -1 : it->second;
}

void SampledIndex::Window(int group, int64_t t0, int64_t t1, StrataWindow* window) const {
  const uint32_t* cells = cell_begin_.data() + static_cast<size_t>(group) * kCellsPerGroup;
  const int64_t* t = times_.data();
  for (int s = 0; s < kCellsPerGroup; ++s) {
    const uint32_t begin = cells[s];
    const uint32_t end = cells[s + 1];
    if (!has_time_) {
      window->lo[s] = begin;
      window->hi[s] = end;
      continue;
    }
    window->lo[s] = static_cast<uint32_t>(std::lower_bound(t + begin, t + end, t0) - t);
    window->hi[s] = static_cast<uint32_t>(std::lower_bound(t + window->lo[s], t + end, t1) - t);
  }
}

std::pair<double, double> SampledIndex::RestRange(int group, int value_idx, int64_t t0,
                                                  int64_t t1) const {
  const int64_t* start = bucket_start_.data() + bucket_begin_[group];
  const int64_t* end = bucket_start_.data() + bucket_begin_[group + 1];
  // Buckets that can hold rows in [t0, t1): from the last one starting before t0 to the last
  // one starting before t1 (rows of a bucket are at or after its start).
  const int64_t* first = std::lower_bound(start, end, t0);
  if (first != start) --first;
  const int64_t* last = std::lower_bound(start, end, t1);
  double lo = INFINITY, hi = -INFINITY;
  const size_t columns = values_.size();
  for (const int64_t* b = first; b < last; ++b) {
    const size_t bucket = static_cast<size_t>(b - bucket_start_.data());
    const double mn = bucket_range_[(bucket * columns + value_idx) * 2];
    const double mx = bucket_range_[(bucket * columns + value_idx) * 2 + 1];
    if (std::isnan(mn)) continue;
    lo = std::min(lo, mn);
    hi = std::max(hi, mx);
  }
  if (!(lo <= hi)) return {kNaN, kNaN};
  return {lo, hi};
}

int SampledIndex::ValueIndex(std::string_view column) const {
  for (size_t v = 0; v < options_.value_columns.size(); ++v) {
    if (options_.value_columns[v] == column) return static_cast<int>(v);
  }
  return -1;
}

}  // namespace apx::store
