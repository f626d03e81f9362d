// agg/select.h
//
// Selection of order statistics for the quantile estimators (internal to agg/).
//
// SelectNth is a drop-in for std::nth_element on doubles that avoids its branch
// mispredictions: quickselect with a branch-free Lomuto partition (the element's side is an
// arithmetic increment, not a jump) and a median-of-three pivot taken at pseudo-random
// positions. On fresh random data it is 3–5× faster than libstdc++'s introselect for n ≥ 10⁴
// (bench/agg_bench.cc). A fixed xorshift sequence picks the pivot positions, so results and
// timings are deterministic; after 64 rounds it hands over to std::nth_element, which bounds
// the worst case. Each round splits three ways (< pivot, == pivot, > pivot); the range it
// returns lets callers skip selecting ranks that fall among copies of a selected value.
//
// Thread safety: pure function of its arguments.
#ifndef APX_AGG_SELECT_H_
#define APX_AGG_SELECT_H_

#include <cstddef>

namespace apx::agg {

// Positions [first, last) of an array that already hold what a full ascending sort would put
// there, with every element before `first` ≤ and every one from `last` on ≥ theirs.
struct PlacedRange {
  size_t first = 0, last = 0;
};

// Reorders data[0, size) so that data[k] is the value a full ascending sort would put there,
// every element before it is ≤ data[k] and every element after it is ≥ data[k] (the contract
// of std::nth_element). Returns the placed positions around k that the selection found for
// free: on tied data, every copy of data[k] (the three-way partition's equal block, or the
// final small sorted segment), so that further ranks among the ties need no selection.
// REQUIRES: k < size; no NaN in data.
PlacedRange SelectNth(double* data, size_t size, size_t k);

}  // namespace apx::agg

#endif  // APX_AGG_SELECT_H_
