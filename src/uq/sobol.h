// uq/sobol.h
//
// Sobol' low-discrepancy points in [0,1)^dims, optionally randomised ("scrambled").
//
// Sequence. Boost.Random's `boost::random::sobol` (direction numbers of Joe & Kuo, "Constructing
// Sobol sequences with better two-dimensional projections", SIAM J. Sci. Comput. 30 (2008),
// table new-joe-kuo-6.21201; Gray-code order). Boost's engine starts at the SECOND point of the
// sequence, (0.5, 0.5, ...), because its state starts at the first lattice row. We prepend the
// origin, so row 0 is (0, ..., 0) and rows 1.. are Boost's points:
//   (0, 0, 0), (0.5, 0.5, 0.5), (0.75, 0.25, 0.25), (0.25, 0.75, 0.75), (0.375, 0.375, 0.625), ...
// exactly as scipy.stats.qmc.Sobol(scramble=False) emits them. With the origin, the first 2^m
// rows form a (t, m, s)-net: each 1-D projection has exactly one point in every interval
// [k/2^m, (k+1)/2^m). Dropping the origin (as Boost does) would break that balance.
//
// Scrambling (seeded, never a global RNG), on the 64-bit integer digits before they become
// doubles:
//   kDigitalShift  x ^= s_d, one random 64-bit word s_d per dimension (a random digital shift).
//   kOwen          nested uniform scrambling (A. B. Owen, "Randomly permuted (t,m,s)-nets and
//                  (t,s)-sequences", 1995): digit j of x is flipped by a random bit that depends
//                  on the dimension, j and all higher digits of x. The random bits come from a
//                  seeded 64-bit hash (SplitMix64 finaliser) instead of a stored tree, the idea
//                  of B. Burley, "Practical Hash-based Owen Scrambling", JCGT 9(4), 2020.
// Both keep the net property above (each is a bijection of every dyadic interval family) and
// make every point uniform on [0,1)^dims; Owen scrambling also reduces the variance of smooth
// QMC integrals (O(n^-3/2) RMSE), which is why the Saltelli design uses it.
//
// Values are the top 53 bits of the (scrambled) 64-bit digits times 2^-53, so every value is
// a multiple of 2^-53 in [0, 1). Unscrambled points are dyadic rationals and exact.
//
// Thread safety: free functions without shared state; safe to call concurrently.
#ifndef APX_UQ_SOBOL_H_
#define APX_UQ_SOBOL_H_

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace apx::uq {

// Most dimensions Boost's default Sobol' table supports.
inline constexpr int kMaxSobolDims = 3667;

enum class Scrambling {
  kNone,          // the plain sequence (row 0 is the origin)
  kDigitalShift,  // random digital shift (XOR with a seeded word per dimension)
  kOwen,          // hash-based nested uniform (Owen) scrambling
};

// n points of the Sobol' sequence in [0,1)^dims, row-major (n x dims): point i, dimension d
// is at [i * dims + d]. `seed` selects the scrambling (ignored for kNone); the same
// (dims, n, seed, scrambling) always gives the same points.
// Errors: InvalidArgument if dims is not in [1, kMaxSobolDims] or n < 0.
Result<std::vector<double>> SobolPoints(int dims, int n, uint64_t seed, Scrambling scrambling);

// Convenience form: scramble == true means kOwen, false means kNone.
Result<std::vector<double>> SobolPoints(int dims, int n, uint64_t seed, bool scramble);

}  // namespace apx::uq

#endif  // APX_UQ_SOBOL_H_
