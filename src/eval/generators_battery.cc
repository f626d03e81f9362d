// Battery analogue (biathlon-spec D.3; docs/benchmarks/battery.md), after the NASA Li-ion
// battery ageing data: charge cycles of 34 batteries. A cycle is constant-current (CC) charging
// at ~1.5 A until the cell reaches 4.2 V, then constant-voltage (CV) charging while the current
// decays exponentially to a 15-30 mA cut-off. Ageing shrinks the capacity (a shorter CC phase) and
// raises the internal resistance (a slower CV decay, more heat). A request is (cycle, time t)
// from the second half of the cycle; the label is the remaining charge time E - t (seconds).
//
// Tables: `charges` (bid, t, 5 measured signals; one row per 2.5 s / scale) and `requests`
// (bid, t, elapsed = t - cycle start, rul). Cycles are laid out one per 12 hours in a random
// order, so that a time split of `requests` is a random split of cycles, as in the original.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "eval/generator_util.h"

namespace apx::eval::internal {
namespace {

constexpr int kBatteries = 34;
constexpr int kCyclesPerBattery = 84;  // 2,856 charge cycles (the original has ~2.8k)
constexpr double kSamplePeriod = 2.5;  // seconds between rows at scale 1
constexpr int64_t kBatteryStart = 1262304000;  // 2010-01-01
constexpr int64_t kCycleSpacing = 12 * 3600;

}  // namespace

Result<Tables> Battery(uint64_t seed, double scale, const store::ProgressFn& progress) {
  Rng rng(seed);
  const int cycles = kBatteries * kCyclesPerBattery;
  const double period = std::min(60.0, kSamplePeriod / scale);
  // Cycle order in time: a seeded shuffle (Fisher–Yates with our RNG).
  std::vector<int> slot(cycles);
  std::iota(slot.begin(), slot.end(), 0);
  for (int i = cycles - 1; i > 0; --i) std::swap(slot[i], slot[rng.Next() % (i + 1)]);

  struct Cell {
    double capacity, resistance, ambient, heat;  // per battery
  };
  std::vector<Cell> cells(kBatteries);
  for (Cell& c : cells) {
    c.capacity = 2.0 * (1 + 0.04 * rng.Normal());     // Ah when new
    c.resistance = 0.07 * (1 + 0.10 * rng.Normal());  // ohm when new
    c.ambient = rng.Uniform(22, 26);                  // deg C (24 deg C test chambers)
    c.heat = rng.Uniform(5, 9);                       // deg C per W of I^2 R heating
  }

  std::vector<store::Column> sig;
  sig.push_back(MakeColumn("bid", store::ColumnType::kString));
  sig.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
  for (const char* name : {"voltage_measured", "current_measured", "temperature_measured",
                           "current_load", "voltage_load"}) {
    sig.push_back(MakeColumn(name, store::ColumnType::kDouble));
  }
  std::vector<store::Column> req;
  req.push_back(MakeColumn("bid", store::ColumnType::kString));
  req.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
  req.push_back(MakeColumn("elapsed", store::ColumnType::kDouble));
  req.push_back(MakeColumn("rul", store::ColumnType::kDouble));

  // Cycles in time order, so that both tables come out sorted by t.
  std::vector<int> cycle_at(cycles);
  for (int c = 0; c < cycles; ++c) cycle_at[slot[c]] = c;
  int64_t rows_done = 0;
  const int64_t rows_estimate = static_cast<int64_t>(cycles * 7000 / period);
  for (int k = 0; k < cycles; ++k) {
    const int c = cycle_at[k];
    const int battery = c / kCyclesPerBattery;
    const double age = static_cast<double>(c % kCyclesPerBattery) / kCyclesPerBattery;
    const Cell& cell = cells[battery];
    char bid[16];
    std::snprintf(bid, sizeof(bid), "B%02d-%03d", battery, c % kCyclesPerBattery);
    sig[0].dictionary.emplace_back(bid);
    req[0].dictionary.emplace_back(bid);
    const int32_t code = static_cast<int32_t>(sig[0].dictionary.size() - 1);
    const int64_t start = kBatteryStart + kCycleSpacing * k;

    // This cycle's physics: capacity fade, resistance growth, how empty the cell starts, and
    // the charger's current (all with cycle-to-cycle noise).
    const double capacity = cell.capacity * (1 - 0.30 * age) * (1 + 0.03 * rng.Normal());
    const double resistance = cell.resistance * (1 + 1.2 * age) * (1 + 0.05 * rng.Normal());
    const double soc0 = rng.Uniform(0.0, 0.2);
    const double i_cc = 1.5 * (1 + 0.01 * rng.Normal());
    const double t_cc = std::max(300.0, capacity * (0.85 - soc0) / i_cc * 3600);
    const double tau_cv = 550 * (resistance / 0.07) * (1 + 0.2 * rng.Normal()) + 150;
    const double cutoff = rng.Uniform(0.015, 0.03);  // the charger's end-of-charge current
    const double t_cv = tau_cv * std::log(i_cc / cutoff);
    const double end = t_cc + t_cv;
    const double v0 = 3.45 + 0.25 * soc0 + 0.5 * resistance;

    double temperature = cell.ambient;
    const int rows = static_cast<int>(end / period);
    for (int r = 0; r < rows; ++r) {
      const double t = r * period;
      double current, voltage;
      if (t < t_cc) {
        current = i_cc;
        voltage = v0 + (4.2 - v0) * std::pow(t / t_cc, 0.6);
      } else {
        current = i_cc * std::exp(-(t - t_cc) / tau_cv);
        voltage = 4.2;
      }
      // First-order thermal model: heats with I^2 R, relaxes to ambient in ~15 minutes.
      const double target = cell.ambient + cell.heat * current * current * resistance * 10;
      temperature += (target - temperature) * (1 - std::exp(-period / 900));
      sig[0].codes.push_back(code);
      sig[1].ints.push_back(start + static_cast<int64_t>(t));
      sig[2].doubles.push_back(voltage + 0.004 * rng.Normal());
      sig[3].doubles.push_back(current + 0.006 * rng.Normal());
      sig[4].doubles.push_back(temperature + 0.08 * rng.Normal());
      sig[5].doubles.push_back(current * 0.998 + 0.01 * rng.Normal());
      sig[6].doubles.push_back(voltage + current * 0.05 + 0.02 * rng.Normal());
    }
    rows_done += rows;
    // The request: a time from the second half of the cycle.
    const double t_req = std::floor(rng.Uniform(0.5, 0.98) * end);
    req[0].codes.push_back(code);
    req[1].ints.push_back(start + static_cast<int64_t>(t_req));
    req[2].doubles.push_back(t_req);
    req[3].doubles.push_back(end - t_req);
    if (progress && (k + 1) % 100 == 0) progress(std::min(rows_done, rows_estimate), rows_estimate);
  }
  if (progress) progress(rows_estimate, rows_estimate);
  Tables tables;
  tables.push_back(MakeTable("charges", "t", std::move(sig)));
  tables.push_back(MakeTable("requests", "t", std::move(req)));
  return tables;
}

}  // namespace apx::eval::internal
