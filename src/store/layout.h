// store/layout.h
//
// Layout constants of the embedded store, in one place, with the relations between them
// checked at compile time. See docs/snapshot-format.md for the on-disk format.
#ifndef APX_STORE_LAYOUT_H_
#define APX_STORE_LAYOUT_H_

#include <cstdint>

namespace apx::store {

// Rows of every key group are split into this many random sample strata; reading strata
// 0..k-1 reads a uniform random sample of ratio k / kNumStrata. 1 % granules, as in the
// published system (biathlon-spec B.2 `nparts`).
inline constexpr int kNumStrata = 100;

// Snapshot file: 8-byte magic, then a format version.
inline constexpr uint64_t kSnapshotMagic = 0x3150414E53585041ULL;  // bytes "APXSNAP1"
inline constexpr uint32_t kSnapshotVersion = 1;

// Rows per CSV parse batch and per progress update.
inline constexpr int64_t kIngestProgressRows = 1 << 18;

static_assert(kNumStrata > 0 && kNumStrata <= 1024, "strata ids must fit the 16-bit stratum column");

}  // namespace apx::store

#endif  // APX_STORE_LAYOUT_H_
