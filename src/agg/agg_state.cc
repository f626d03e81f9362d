// agg/agg_state.cc: the per-batch hot loops of the aggregation states.
#include "agg/agg_state.h"

#include "agg/select.h"

#include <algorithm>
#include <limits>

namespace apx::agg {
namespace {

// The reductions are `omp simd reduction` loops (the library is compiled with -fopenmp-simd:
// no OpenMP runtime, only the vectorisation pragma), which lets the compiler keep vector
// accumulators without -ffast-math. The order-2 loops walk two streams (the two halves of the
// block) so that two independent accumulator chains hide the add latency; the order-4 loop has
// three chains already. The summation order depends on the vector width; results agree with a
// sequential sum to rounding.

// Σx over a block; also folds the block's smallest and largest value into *lo, *hi (same
// pass: the block is read once).
double SumBlock(const double* __restrict x, size_t len, double* lo_out, double* hi_out) {
  const size_t half = len / 2;
  const double* __restrict y = x + half;
  double sum_a = 0, sum_b = 0;
  double lo = *lo_out, hi = *hi_out;
#pragma omp simd reduction(+ : sum_a, sum_b) reduction(min : lo) reduction(max : hi)
  for (size_t i = 0; i < half; ++i) {
    sum_a += x[i];
    sum_b += y[i];
    const double small = x[i] < y[i] ? x[i] : y[i];
    const double large = x[i] < y[i] ? y[i] : x[i];
    lo = small < lo ? small : lo;
    hi = large > hi ? large : hi;
  }
  if (len % 2 != 0) {
    sum_b += x[len - 1];
    lo = x[len - 1] < lo ? x[len - 1] : lo;
    hi = x[len - 1] > hi ? x[len - 1] : hi;
  }
  *lo_out = lo;
  *hi_out = hi;
  return sum_a + sum_b;
}

// Σ(x − mean)² over a block.
double CentralSum2(const double* __restrict x, size_t len, double mean) {
  const size_t half = len / 2;
  const double* __restrict y = x + half;
  double s2_a = 0, s2_b = 0;
#pragma omp simd reduction(+ : s2_a, s2_b)
  for (size_t i = 0; i < half; ++i) {
    const double d_a = x[i] - mean;
    const double d_b = y[i] - mean;
    s2_a += d_a * d_a;
    s2_b += d_b * d_b;
  }
  if (len % 2 != 0) s2_b += (x[len - 1] - mean) * (x[len - 1] - mean);
  return s2_a + s2_b;
}

// Σ(x − mean)^k for k = 2, 3, 4 over a block.
void CentralSums234(const double* __restrict x, size_t len, double mean, double* s2_out,
                    double* s3_out, double* s4_out) {
  double s2 = 0, s3 = 0, s4 = 0;
#pragma omp simd reduction(+ : s2, s3, s4)
  for (size_t i = 0; i < len; ++i) {
    const double d = x[i] - mean;
    const double d2 = d * d;
    s2 += d2;
    s3 += d2 * d;
    s4 += d2 * d2;
  }
  *s2_out = s2;
  *s3_out = s3;
  *s4_out = s4;
}

}  // namespace

template <int kOrder>
void MomentState<kOrder>::Combine(int64_t rows_b, double mean_b, double m2_b, double m3_b,
                                  double m4_b) {
  if (rows_b == 0) return;
  if (rows == 0) {
    rows = rows_b;
    mean = mean_b;
    m2 = m2_b;
    m3 = m3_b;
    m4 = m4_b;
    return;
  }
  // Chan et al. (1979), Pébay (2008) eq. 2.1/2.2 with δ = mean_b − mean_a, n = n_a + n_b:
  //   M2 = M2a + M2b + δ²·na·nb/n
  //   M3 = M3a + M3b + δ³·na·nb·(na − nb)/n² + 3δ·(na·M2b − nb·M2a)/n
  //   M4 = M4a + M4b + δ⁴·na·nb·(na² − na·nb + nb²)/n³ + 6δ²·(na²·M2b + nb²·M2a)/n²
  //        + 4δ·(na·M3b − nb·M3a)/n
  const double na = static_cast<double>(rows);
  const double nb = static_cast<double>(rows_b);
  const double nn = na + nb;
  const double delta = mean_b - mean;
  const double delta_n = delta / nn;
  const double term = delta * delta_n * na * nb;  // δ²·na·nb/n
  if constexpr (kOrder == 4) {
    const double delta_n2 = delta_n * delta_n;
    m4 += m4_b + term * delta_n2 * (na * na - na * nb + nb * nb) +
          6.0 * delta_n2 * (na * na * m2_b + nb * nb * m2) + 4.0 * delta_n * (na * m3_b - nb * m3);
    m3 += m3_b + term * delta_n * (na - nb) + 3.0 * delta_n * (na * m2_b - nb * m2);
  }
  m2 += m2_b + term;
  mean += nb * delta_n;
  rows += rows_b;
}

template <int kOrder>
void MomentState<kOrder>::UpdateBatch(std::span<const double> values) {
  const double* data = values.data();
  const size_t size = values.size();
  for (size_t begin = 0; begin < size; begin += kChunk) {
    const double* chunk = data + begin;
    const size_t len = std::min(kChunk, size - begin);
    const double chunk_mean = SumBlock(chunk, len, &lo, &hi) / static_cast<double>(len);
    double s2 = 0, s3 = 0, s4 = 0;
    if constexpr (kOrder == 4) {
      CentralSums234(chunk, len, chunk_mean, &s2, &s3, &s4);
    } else {
      s2 = CentralSum2(chunk, len, chunk_mean);
    }
    Combine(static_cast<int64_t>(len), chunk_mean, s2, s3, s4);
  }
}

template struct MomentState<2>;
template struct MomentState<4>;

template <bool kMax>
void ExtremeState<kMax>::Insert(double oriented) {
  if (count == kKeep && oriented <= top[kKeep - 1]) return;
  int pos = count;  // insertion point: first slot holding a smaller value
  while (pos > 0 && top[pos - 1] < oriented) --pos;
  if (pos > 0 && top[pos - 1] == oriented) return;  // already held: distinct values only
  const int last = std::min(count, kKeep - 1);      // the kKeep-th value falls off when full
  for (int slot = last; slot > pos; --slot) top[slot] = top[slot - 1];
  top[pos] = oriented;
  if (count < kKeep) ++count;
}

template <bool kMax>
void ExtremeState<kMax>::UpdateBatch(std::span<const double> values) {
  constexpr double kSign = kMax ? 1.0 : -1.0;
  const double* __restrict x = values.data();
  const size_t size = values.size();
  // Fast path: once kKeep distinct values are held, a row is one compare against the threshold.
  double threshold = count == kKeep ? top[kKeep - 1] : -std::numeric_limits<double>::infinity();
  for (size_t row_idx = 0; row_idx < size; ++row_idx) {
    const double oriented = kSign * x[row_idx];
    if (oriented > threshold) {
      Insert(oriented);
      if (count == kKeep) threshold = top[kKeep - 1];
    }
  }
  rows += static_cast<int64_t>(size);
}

template <bool kMax>
void ExtremeState<kMax>::Merge(const ExtremeState& other) {
  for (int slot = 0; slot < other.count; ++slot) Insert(other.top[slot]);
  rows += other.rows;
}

template struct ExtremeState<false>;
template struct ExtremeState<true>;

double SampleState::Select(size_t k, const SampleState* extra) const {
  const size_t extra_n = extra == nullptr ? 0 : extra->values.size();
  if (selected_from_ != values.size() || selected_with_ != extra || selected_with_n_ != extra_n) {
    scratch.assign(values.begin(), values.end());
    if (extra != nullptr) scratch.insert(scratch.end(), extra->values.begin(), extra->values.end());
    placed_.clear();
    selected_from_ = values.size();
    selected_with_ = extra;
    selected_with_n_ = extra_n;
  }
  // The first placed range that ends after k: k is inside it, or in the segment before it.
  auto it = std::upper_bound(placed_.begin(), placed_.end(), k,
                             [](size_t rank, const PlacedRange& r) { return rank < r.last; });
  if (it != placed_.end() && it->first <= k) return scratch[k];
  // Everything before the placed range below k is smaller and everything from the one above is
  // larger: select inside that segment only.
  const size_t lo = it == placed_.begin() ? 0 : (it - 1)->last;
  const size_t hi = it == placed_.end() ? scratch.size() : it->first;
  const PlacedRange found = SelectNth(scratch.data() + lo, hi - lo, k - lo);
  placed_.insert(it, {lo + found.first, lo + found.last});
  return scratch[k];
}

const std::vector<double>& SampleState::SortedValues() const {
  const size_t old_size = sorted.size();
  const size_t new_size = values.size();
  if (old_size == new_size) return sorted;
  // Sort only the rows added since the last call, then merge them with the sorted prefix.
  sorted.insert(sorted.end(), values.begin() + old_size, values.end());
  std::sort(sorted.begin() + old_size, sorted.end());
  if (old_size > 0) {
    merge_buffer.resize(new_size);
    std::merge(sorted.begin(), sorted.begin() + old_size, sorted.begin() + old_size, sorted.end(),
               merge_buffer.begin());
    sorted.swap(merge_buffer);
  }
  return sorted;
}

}  // namespace apx::agg
