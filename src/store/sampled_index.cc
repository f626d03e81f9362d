#include "store/sampled_index.h"

#include <algorithm>
#include <charconv>
#include <random>

namespace apx::store {
namespace {

// Key part of one row of one key column: dictionary code (string) or the value (int64).
inline uint64_t KeyPart(const Column& c, size_t row) {
  return c.type == ColumnType::kString ? static_cast<uint32_t>(c.codes[row])
                                       : static_cast<uint64_t>(c.ints[row]);
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

  // Random stratum of every row, then a stable counting sort by (group, stratum): rows keep
  // their time order inside a cell.
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int> stratum_of(0, kNumStrata - 1);
  std::vector<uint32_t> cell(n);
  const size_t num_cells = static_cast<size_t>(num_groups) * kNumStrata;
  std::vector<uint32_t> begin(num_cells + 1, 0);
  for (size_t row = 0; row < n; ++row) {
    cell[row] = group[row] * kNumStrata + static_cast<uint32_t>(stratum_of(rng));
    ++begin[cell[row] + 1];
  }
  for (size_t c = 0; c < num_cells; ++c) begin[c + 1] += begin[c];
  std::vector<uint32_t> next(begin.begin(), begin.end() - 1);
  std::vector<uint32_t> position(n);
  for (size_t row = 0; row < n; ++row) position[row] = next[cell[row]]++;

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
    index->group_begin_[g] = index->cell_begin_[static_cast<size_t>(g) * kNumStrata];
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
  const uint32_t* cells = cell_begin_.data() + static_cast<size_t>(group) * kNumStrata;
  const int64_t* t = times_.data();
  for (int s = 0; s < kNumStrata; ++s) {
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

int SampledIndex::ValueIndex(std::string_view column) const {
  for (size_t v = 0; v < options_.value_columns.size(); ++v) {
    if (options_.value_columns[v] == column) return static_cast<int>(v);
  }
  return -1;
}

}  // namespace apx::store
