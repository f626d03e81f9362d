#include "eval/generators.h"

#include <cmath>
#include <cstdio>
#include <numbers>

namespace apx::eval {
namespace {

// xoshiro256+ (Blackman & Vigna) seeded through splitmix64: fast, and fully specified here so
// generated data do not depend on the standard library's distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      s = z ^ (z >> 31);
    }
  }
  uint64_t Next() {
    const uint64_t result = s_[0] + s_[3];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = (s_[3] << 45) | (s_[3] >> 19);
    return result;
  }
  // Uniform in (0, 1).
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Standard normal (Box–Muller, both values used).
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(Uniform()));
    const double a = 2.0 * std::numbers::pi * Uniform();
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

store::Column MakeColumn(std::string name, store::ColumnType type) {
  store::Column c;
  c.name = std::move(name);
  c.type = type;
  return c;
}

// Bearing-Imbalance analogue (docs/benchmarks/bearing.md). A motor test rig records 8 signals
// (tachometer, two 3-axis accelerometers, microphone) at 50 kHz for 5 s; each recording is one
// segment ("bid") of 50,000 rows x 8 sensors. A segment is "imbalance" (label 1) or "normal".
// The mean of each accelerometer signal carries a small shift proportional to the imbalance
// load, confounded by rotation speed (visible through the tachometer's mean) and by
// rig-to-rig offsets, so that the averages predict the label well but not perfectly.
constexpr int kBearingSegments = 800;
constexpr int kBearingRowsPerSegment = 50'000;
constexpr int kBearingSensors = 8;
constexpr int64_t kBearingStart = 1577836800;  // 2020-01-01 00:00, one segment per minute

Result<std::vector<std::unique_ptr<store::Table>>> Bearing(uint64_t seed, double scale,
                                                           const store::ProgressFn& progress) {
  const int rows_per_segment =
      std::max(200, static_cast<int>(std::lround(kBearingRowsPerSegment * scale)));
  Rng rng(seed);
  // Per-sensor constants: base level, rotation-speed gain, imbalance gain, rig noise, the
  // vibration amplitude and the per-row noise.
  struct Sensor {
    double base, speed_gain, fault_gain, rig_sd, amplitude, noise_sd;
  };
  const Sensor sensors[kBearingSensors] = {
      {0.0, 0.10, 0.00, 0.05, 2.0, 0.5},   // tachometer: mean tracks rotation speed
      {0.2, 0.004, 0.12, 0.06, 1.0, 1.0},  // underhang accelerometer, axial
      {-0.1, 0.003, 0.08, 0.06, 1.2, 1.0}, // underhang, radial
      {0.0, 0.002, 0.05, 0.06, 0.8, 1.0},  // underhang, tangential
      {0.3, 0.004, 0.10, 0.06, 1.0, 1.0},  // overhang, axial
      {0.1, 0.002, 0.06, 0.06, 1.1, 1.0},  // overhang, radial
      {-0.2, 0.002, 0.03, 0.06, 0.9, 1.0}, // overhang, tangential
      {0.0, 0.001, 0.02, 0.05, 0.5, 0.8},  // microphone
  };
  const double severities[] = {6, 10, 15, 20, 25, 30, 35};  // grams of imbalance load

  std::vector<store::Column> sig;
  sig.push_back(MakeColumn("bid", store::ColumnType::kString));
  for (int s = 0; s < kBearingSensors; ++s) {
    sig.push_back(MakeColumn("s" + std::to_string(s + 1), store::ColumnType::kDouble));
  }
  const size_t total = static_cast<size_t>(kBearingSegments) * rows_per_segment;
  sig[0].codes.reserve(total);
  for (int s = 1; s <= kBearingSensors; ++s) sig[s].doubles.reserve(total);
  std::vector<store::Column> seg;
  seg.push_back(MakeColumn("bid", store::ColumnType::kString));
  seg.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
  seg.push_back(MakeColumn("label", store::ColumnType::kDouble));
  seg.push_back(MakeColumn("load", store::ColumnType::kDouble));
  seg.push_back(MakeColumn("speed", store::ColumnType::kDouble));

  for (int b = 0; b < kBearingSegments; ++b) {
    char bid[16];
    std::snprintf(bid, sizeof(bid), "b%04d", b);
    sig[0].dictionary.emplace_back(bid);
    seg[0].dictionary.emplace_back(bid);
    const bool fault = rng.Uniform() < 0.6;
    const double load = fault ? severities[rng.Next() % 7] : 0.0;
    const double speed = rng.Uniform(12.0, 60.0);  // rotation frequency, Hz
    seg[0].codes.push_back(b);
    seg[1].ints.push_back(kBearingStart + 60LL * b);
    seg[2].doubles.push_back(fault ? 1.0 : 0.0);
    seg[3].doubles.push_back(load);
    seg[4].doubles.push_back(speed);
    double mean[kBearingSensors], phase[kBearingSensors];
    for (int s = 0; s < kBearingSensors; ++s) {
      const Sensor& k = sensors[s];
      // Load acts through the centrifugal force ~ load * speed^2 (normalised to [0, ~1.2]).
      const double force = load / 35.0 * (speed * speed) / (36.0 * 36.0);
      mean[s] = k.base + k.speed_gain * speed + k.fault_gain * force + k.rig_sd * rng.Normal();
      phase[s] = rng.Uniform(0, 2 * std::numbers::pi);
    }
    // Rows: 5 s of signal, whatever the scale (fewer rows = a lower sampling rate).
    const double dt = 5.0 / rows_per_segment;
    const double w = 2 * std::numbers::pi * speed;
    for (int r = 0; r < rows_per_segment; ++r) {
      sig[0].codes.push_back(b);
      const double t = r * dt;
      for (int s = 0; s < kBearingSensors; ++s) {
        const Sensor& k = sensors[s];
        sig[s + 1].doubles.push_back(mean[s] + k.amplitude * std::sin(w * t + phase[s]) +
                                     k.noise_sd * rng.Normal());
      }
    }
    if (progress && (b + 1) % 50 == 0) {
      progress(static_cast<int64_t>(b + 1) * rows_per_segment, static_cast<int64_t>(total));
    }
  }
  store::TableSchema sig_schema{.name = "signals"};
  for (const store::Column& c : sig) sig_schema.columns.push_back({c.name, c.type});
  store::TableSchema seg_schema{.name = "segments", .time_column = "t"};
  for (const store::Column& c : seg) seg_schema.columns.push_back({c.name, c.type});
  std::vector<std::unique_ptr<store::Table>> tables;
  tables.push_back(std::make_unique<store::Table>(sig_schema, std::move(sig), static_cast<int64_t>(total)));
  tables.push_back(std::make_unique<store::Table>(seg_schema, std::move(seg), kBearingSegments));
  return tables;
}

}  // namespace

std::vector<std::string> GeneratorNames() { return {"bearing"}; }

Result<std::vector<std::unique_ptr<store::Table>>> GenerateDataset(std::string_view name,
                                                                   uint64_t seed, double scale,
                                                                   const store::ProgressFn& progress) {
  if (!(scale > 0 && scale <= 10)) {
    return Status::InvalidArgument("generator scale must be in (0, 10]");
  }
  if (name == "bearing") return Bearing(seed, scale, progress);
  std::string names;
  for (const std::string& n : GeneratorNames()) names += (names.empty() ? "" : ", ") + n;
  return Status::NotFound("unknown data generator '" + std::string(name) + "' (known: " + names + ")");
}

}  // namespace apx::eval
