// common/stats.h
//
// Small descriptive statistics shared by the evaluation and the load generator.
//
// Thread safety: pure functions.
#ifndef APX_COMMON_STATS_H_
#define APX_COMMON_STATS_H_

#include <vector>

namespace apx {

// Percentile (0..100) by linear interpolation between order statistics; 0 for an empty input.
double Percentile(std::vector<double> values, double pct);

}  // namespace apx

#endif  // APX_COMMON_STATS_H_
