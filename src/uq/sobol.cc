// uq/sobol.cc
#include "uq/sobol.h"

#include <array>
#include <boost/random/sobol.hpp>
#include <string>

namespace apx::uq {
namespace {

// Bits of the 64-bit Sobol' digits that reach a double in [0, 1).
constexpr int kMantissaBits = 53;
constexpr double kTwoToMinus53 = 0x1p-53;
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

// SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
// OOPSLA 2014): a bijective 64-bit mixer with full avalanche.
uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The random word of dimension `dim` for `seed`.
uint64_t DimensionWord(uint64_t seed, int dim) {
  return Mix64(Mix64(seed + kGolden) ^ Mix64(static_cast<uint64_t>(dim) * kGolden + 1));
}

// Per-dimension Owen scrambler: one key per digit level, so the flip bit of digit j is a hash
// of (dimension, j, the j higher original digits).
class OwenScrambler {
 public:
  explicit OwenScrambler(uint64_t dim_word) {
    for (int level = 0; level < kMantissaBits; ++level) {
      level_keys_[level] = Mix64(dim_word ^ (static_cast<uint64_t>(level + 1) * kGolden));
    }
  }

  // Scrambles the top kMantissaBits digits of x (the rest are dropped by the caller).
  uint64_t Scramble(uint64_t x) const {
    uint64_t result = x;
    for (int level = 0; level < kMantissaBits; ++level) {
      const uint64_t prefix = level == 0 ? 0 : x >> (64 - level);
      const uint64_t flip = Mix64(level_keys_[level] ^ prefix) >> 63;
      result ^= flip << (63 - level);
    }
    return result;
  }

 private:
  std::array<uint64_t, kMantissaBits> level_keys_{};
};

}  // namespace

Result<std::vector<double>> SobolPoints(int dims, int n, uint64_t seed, Scrambling scrambling) {
  if (dims < 1 || dims > kMaxSobolDims) {
    return Status::InvalidArgument("SobolPoints: dims = " + std::to_string(dims) +
                                   " is outside [1, " + std::to_string(kMaxSobolDims) + "]");
  }
  if (n < 0) {
    return Status::InvalidArgument("SobolPoints: n = " + std::to_string(n) + " is negative");
  }
  const size_t num_dims = static_cast<size_t>(dims);
  const size_t num_points = static_cast<size_t>(n);

  // Raw 64-bit digits, row 0 = the origin (see the header: Boost starts at the next point).
  std::vector<uint64_t> digits(num_points * num_dims, 0);
  if (num_points > 1) {
    boost::random::sobol engine(num_dims);
    for (size_t i = num_dims; i < digits.size(); ++i) digits[i] = engine();
  }

  switch (scrambling) {
    case Scrambling::kNone:
      break;
    case Scrambling::kDigitalShift:
      for (size_t dim_idx = 0; dim_idx < num_dims; ++dim_idx) {
        const uint64_t shift = DimensionWord(seed, static_cast<int>(dim_idx));
        for (size_t point_idx = 0; point_idx < num_points; ++point_idx) {
          digits[point_idx * num_dims + dim_idx] ^= shift;
        }
      }
      break;
    case Scrambling::kOwen:
      for (size_t dim_idx = 0; dim_idx < num_dims; ++dim_idx) {
        const OwenScrambler scrambler(DimensionWord(seed, static_cast<int>(dim_idx)));
        for (size_t point_idx = 0; point_idx < num_points; ++point_idx) {
          uint64_t& x = digits[point_idx * num_dims + dim_idx];
          x = scrambler.Scramble(x);
        }
      }
      break;
  }

  std::vector<double> points(digits.size());
  for (size_t i = 0; i < digits.size(); ++i) {
    points[i] = static_cast<double>(digits[i] >> (64 - kMantissaBits)) * kTwoToMinus53;
  }
  return points;
}

Result<std::vector<double>> SobolPoints(int dims, int n, uint64_t seed, bool scramble) {
  return SobolPoints(dims, n, seed, scramble ? Scrambling::kOwen : Scrambling::kNone);
}

}  // namespace apx::uq
