// agg/select.cc: branch-free quickselect (see select.h).
#include "agg/select.h"

#include <algorithm>
#include <cstdint>

#include "common/status.h"

namespace apx::agg {
namespace {

// Below this size the rest is sorted directly.
constexpr size_t kSortThreshold = 32;
// Partition rounds before handing over to std::nth_element (guards against bad pivots).
constexpr int kMaxRounds = 64;

// Moves the elements for which `goes_first(v)` holds to the front of data[0, size), keeping no
// order, and returns how many there are. Branch-free: every element is swapped with the slot at
// `store`, and `store` advances by the predicate (0 or 1).
template <typename Pred>
size_t PartitionBranchFree(double* __restrict data, size_t size, Pred goes_first) {
  size_t store = 0;
  for (size_t idx = 0; idx < size; ++idx) {
    const double value = data[idx];
    const bool first = goes_first(value);
    data[idx] = data[store];
    data[store] = value;
    store += first;
  }
  return store;
}

}  // namespace

PlacedRange SelectNth(double* data, size_t size, size_t k) {
  APX_DCHECK(k < size);
  uint64_t state = 0x9E3779B97F4A7C15ull;  // xorshift64 state (golden-ratio constant)
  // data[0, size) is the segment still to split, at `offset` in the caller's array; everything
  // before it is strictly smaller than all of it and everything after strictly larger (each
  // round keeps one side of a strict split, or returns), so a placed range found inside the
  // segment holds every copy of its values.
  size_t offset = 0;
  for (int round = 0; size > kSortThreshold; ++round) {
    if (round == kMaxRounds) {
      std::nth_element(data, data + k, data + size);
      return {offset + k, offset + k + 1};
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    const double a = data[state % size];
    const double b = data[(state >> 21) % size];
    const double c = data[(state >> 42) % size];
    const double pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of 3
    // Three-way split: [0, less) < pivot, [less, less + equal) == pivot, rest > pivot.
    const size_t less = PartitionBranchFree(data, size, [pivot](double v) { return v < pivot; });
    if (k < less) {
      size = less;
      continue;
    }
    const size_t equal =
        PartitionBranchFree(data + less, size - less, [pivot](double v) { return !(pivot < v); });
    if (k < less + equal) return {offset + less, offset + less + equal};  // data[k] == pivot
    data += less + equal;
    offset += less + equal;
    size -= less + equal;
    k -= less + equal;
  }
  std::sort(data, data + size);
  return {offset, offset + size};
}

}  // namespace apx::agg
