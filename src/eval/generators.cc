#include "eval/generators.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "eval/generator_util.h"

namespace apx::eval {
namespace {

using internal::MakeColumn;
using internal::MakeTable;
using internal::Rng;

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
  internal::ReserveRows(sig, total);
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
  std::vector<std::unique_ptr<store::Table>> tables;
  tables.push_back(MakeTable("signals", "", std::move(sig)));
  tables.push_back(MakeTable("segments", "t", std::move(seg)));
  return tables;
}

// Tick-Price analogue (docs/benchmarks/tick.md): FX ticks of 10 currency pairs over February
// 2022 (28 days). Each pair's hourly average bid A_h follows a random walk whose hourly change
// has momentum and mean reversion: dA_{h+1} = 0.5 dA_h - 0.2 dA_{h-1} + noise. Ticks inside an
// hour scatter around A_h (plus a slow intra-hour drift towards the next hour), with a
// session-dependent rate (busier in the London and New York hours).
// Tables: `ticks` (cpair, ts, bid; ~5,000·scale ticks per pair-hour on average) and `hours`
// (cpair, hour = start of the hour, avg_bid = A_h, change = A_h − A_{h−1}, the label).
constexpr int kTickPairs = 10;
constexpr int kTickHours = 28 * 24;
constexpr int64_t kTickStart = 1643673600;  // 2022-02-01 00:00
constexpr double kTicksPerHour = 5000;

Result<std::vector<std::unique_ptr<store::Table>>> Tick(uint64_t seed, double scale,
                                                        const store::ProgressFn& progress) {
  const char* pairs[kTickPairs] = {"EURUSD", "GBPUSD", "AUDUSD", "NZDUSD", "USDCAD",
                                   "USDCHF", "EURCHF", "EURGBP", "AUDNZD", "EURCAD"};
  const double start_price[kTickPairs] = {1.1235, 1.3520, 0.7090, 0.6610, 1.2710,
                                          0.9250, 1.0390, 0.8310, 1.0720, 1.4280};
  Rng rng(seed);
  const double rate = std::max(20.0, kTicksPerHour * scale);

  // Hourly averages first (per pair), then the ticks of each hour.
  std::vector<std::vector<double>> avg(kTickPairs, std::vector<double>(kTickHours + 1));
  for (int p = 0; p < kTickPairs; ++p) {
    const double vol = 0.0012 * start_price[p];  // hourly noise of the change
    double a = start_price[p], d1 = 0, d2 = 0;
    for (int h = 0; h <= kTickHours; ++h) {
      const double d = 0.5 * d1 - 0.2 * d2 + vol * rng.Normal();
      a += d;
      avg[p][h] = a;
      d2 = d1;
      d1 = d;
    }
  }
  std::vector<store::Column> ticks;
  ticks.push_back(MakeColumn("cpair", store::ColumnType::kString));
  ticks.push_back(MakeColumn("ts", store::ColumnType::kTimestamp));
  ticks.push_back(MakeColumn("bid", store::ColumnType::kDouble));
  std::vector<store::Column> hours;
  hours.push_back(MakeColumn("cpair", store::ColumnType::kString));
  hours.push_back(MakeColumn("hour", store::ColumnType::kTimestamp));
  hours.push_back(MakeColumn("avg_bid", store::ColumnType::kDouble));
  hours.push_back(MakeColumn("change", store::ColumnType::kDouble));
  for (int p = 0; p < kTickPairs; ++p) {
    ticks[0].dictionary.emplace_back(pairs[p]);
    hours[0].dictionary.emplace_back(pairs[p]);
  }
  const int64_t total = static_cast<int64_t>(rate * kTickPairs * kTickHours);
  ticks[0].codes.reserve(static_cast<size_t>(total * 1.1));
  ticks[1].ints.reserve(static_cast<size_t>(total * 1.1));
  ticks[2].doubles.reserve(static_cast<size_t>(total * 1.1));
  std::vector<double> offsets;
  int64_t done = 0;
  for (int h = 1; h <= kTickHours; ++h) {
    const int64_t hour_start = kTickStart + 3600LL * (h - 1);
    const int hour_of_day = (h - 1) % 24;
    // Session activity: quiet Asian night, busy London (7-16) and New York (12-21) hours.
    const double activity = 0.4 + (hour_of_day >= 7 && hour_of_day < 16 ? 0.8 : 0.0) +
                            (hour_of_day >= 12 && hour_of_day < 21 ? 0.6 : 0.0);
    for (int p = 0; p < kTickPairs; ++p) {
      // Ticks of pair p in hour h: times uniform in the hour, values around A_h. The tick
      // noise is zero-mean, so the hour's true tick average is close to (not exactly) A_h;
      // the `avg_bid` column stores the realised tick average, which is what a feature store
      // would hold.
      const int n = std::max(10, static_cast<int>(rate * activity / 1.3 * (0.8 + 0.4 * rng.Uniform())));
      const double tick_sd = 0.00025 * start_price[p];
      offsets.resize(static_cast<size_t>(n));
      for (double& o : offsets) o = rng.Uniform();
      std::sort(offsets.begin(), offsets.end());
      double sum = 0;
      for (double o : offsets) {
        const double drift = (avg[p][h] - avg[p][h - 1]) * 0.2 * (o - 0.5);
        const double bid = avg[p][h] + drift + tick_sd * rng.Normal();
        ticks[0].codes.push_back(p);
        ticks[1].ints.push_back(hour_start + static_cast<int64_t>(o * 3600));
        ticks[2].doubles.push_back(bid);
        sum += bid;
      }
      hours[0].codes.push_back(p);
      hours[1].ints.push_back(hour_start);
      hours[2].doubles.push_back(sum / n);
      done += n;
    }
    if (progress && h % 48 == 0) progress(done, total);
  }
  // Label: change of the realised hourly average against the previous hour (0 for the first).
  {
    std::vector<double> last(kTickPairs, std::nan(""));
    for (size_t r = 0; r < hours[2].doubles.size(); ++r) {
      const int p = hours[0].codes[r];
      const double a = hours[2].doubles[r];
      hours[3].doubles.push_back(std::isnan(last[p]) ? 0.0 : a - last[p]);
      last[p] = a;
    }
  }
  // Ticks are generated hour by hour, pair by pair: sort by time (stable) for the store.
  std::vector<uint32_t> order(ticks[1].ints.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return ticks[1].ints[a] < ticks[1].ints[b]; });
  {
    std::vector<int32_t> codes(order.size());
    std::vector<int64_t> ts(order.size());
    std::vector<double> bid(order.size());
    for (size_t i = 0; i < order.size(); ++i) {
      codes[i] = ticks[0].codes[order[i]];
      ts[i] = ticks[1].ints[order[i]];
      bid[i] = ticks[2].doubles[order[i]];
    }
    ticks[0].codes.swap(codes);
    ticks[1].ints.swap(ts);
    ticks[2].doubles.swap(bid);
  }
  std::vector<std::unique_ptr<store::Table>> tables;
  tables.push_back(MakeTable("ticks", "ts", std::move(ticks)));
  tables.push_back(MakeTable("hours", "hour", std::move(hours)));
  if (progress) progress(total, total);
  return tables;
}

// Turbofan analogue (docs/benchmarks/turbofan.md), after NASA's N-CMAPSS: run-to-failure
// flights of 60 engine units. Every flight cycle is recorded at 1 Hz (~5,000·scale rows); the
// per-row estimates of nine health parameters (hs and eight flow/efficiency modifiers) are
// noisy, and their cycle averages reveal the degradation that sets in at an onset cycle and
// accelerates to failure. A request is one (unit, cycle); the label is the remaining useful
// life (RUL) in cycles.
constexpr int kTurbofanUnits = 60;
constexpr int kTurbofanRowsPerCycle = 5000;
constexpr int kTurbofanParams = 9;
constexpr int64_t kTurbofanStart = 1609459200;  // 2021-01-01: one cycle per minute, unit by unit

Result<std::vector<std::unique_ptr<store::Table>>> Turbofan(uint64_t seed, double scale,
                                                            const store::ProgressFn& progress) {
  const char* names[kTurbofanParams] = {"hs",          "SmLPC",        "LPT_flow_mod",
                                        "HPC_eff_mod", "fan_flow_mod", "fan_eff_mod",
                                        "LPT_eff_mod", "HPT_flow_mod", "HPT_eff_mod"};
  // Degradation at failure (modifier units, as in N-CMAPSS where efficiencies fall by up to
  // a few percent) and the per-row noise of each parameter's estimate.
  const double at_failure[kTurbofanParams] = {0.0, -1.5, -0.020, -0.015, -0.012, -0.010,
                                              -0.008, 0.010, -0.025};
  const double noise_sd[kTurbofanParams] = {0.0, 2.0, 0.030, 0.025, 0.020, 0.020,
                                            0.015, 0.020, 0.035};
  Rng rng(seed);
  const int base_rows = std::max(100, static_cast<int>(std::lround(kTurbofanRowsPerCycle * scale)));
  std::vector<store::Column> flights;
  flights.push_back(MakeColumn("uc", store::ColumnType::kString));
  for (const char* n : names) flights.push_back(MakeColumn(n, store::ColumnType::kDouble));
  std::vector<store::Column> cycles;
  cycles.push_back(MakeColumn("uc", store::ColumnType::kString));
  cycles.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
  cycles.push_back(MakeColumn("unit", store::ColumnType::kDouble));
  cycles.push_back(MakeColumn("cycle", store::ColumnType::kDouble));
  cycles.push_back(MakeColumn("rul", store::ColumnType::kDouble));
  int64_t minute = 0, rows = 0;
  const int64_t expected = static_cast<int64_t>(kTurbofanUnits) * 80 * base_rows;
  for (int unit = 0; unit < kTurbofanUnits; ++unit) {
    const int life = 60 + static_cast<int>(rng.Next() % 41);       // 60..100 cycles
    const int onset = static_cast<int>(life * rng.Uniform(0.35, 0.65));
    // Unit-to-unit manufacturing offsets and degradation rates.
    double offset[kTurbofanParams], rate[kTurbofanParams];
    for (int k = 0; k < kTurbofanParams; ++k) {
      offset[k] = 0.15 * std::abs(at_failure[k]) * rng.Normal();
      rate[k] = rng.Uniform(0.7, 1.3);
    }
    for (int c = 1; c <= life; ++c) {
      char uc[24];
      std::snprintf(uc, sizeof(uc), "u%02d_c%03d", unit, c);
      const int32_t code = static_cast<int32_t>(flights[0].dictionary.size());
      flights[0].dictionary.emplace_back(uc);
      cycles[0].dictionary.emplace_back(uc);
      cycles[0].codes.push_back(code);
      cycles[1].ints.push_back(kTurbofanStart + 60 * minute++);
      cycles[2].doubles.push_back(unit);
      cycles[3].doubles.push_back(c);
      cycles[4].doubles.push_back(life - c);
      // Degradation: 0 before the onset, then (progress)^1.5 of the value at failure, plus a
      // slow wear term over the whole life.
      const double progress_frac = c > onset ? static_cast<double>(c - onset) / (life - onset) : 0.0;
      double level[kTurbofanParams];
      for (int k = 1; k < kTurbofanParams; ++k) {
        level[k] = offset[k] + at_failure[k] * rate[k] *
                                   (0.85 * std::pow(progress_frac, 1.5) + 0.15 * c / life);
      }
      // hs: health state, 1 while healthy, 0 once abnormal degradation set in; its estimate
      // flickers around the onset.
      const double p_healthy = 1.0 / (1.0 + std::exp((c - onset) / 1.5));
      const int n = static_cast<int>(base_rows * rng.Uniform(0.6, 1.4));  // flight length
      for (int r = 0; r < n; ++r) {
        flights[0].codes.push_back(code);
        flights[1].doubles.push_back(rng.Uniform() < p_healthy ? 1.0 : 0.0);
        for (int k = 1; k < kTurbofanParams; ++k) {
          flights[k + 1].doubles.push_back(level[k] + noise_sd[k] * rng.Normal());
        }
      }
      rows += n;
    }
    if (progress) progress(std::min(rows, expected), expected);
  }
  std::vector<std::unique_ptr<store::Table>> tables;
  tables.push_back(MakeTable("flights", "", std::move(flights)));
  tables.push_back(MakeTable("cycles", "t", std::move(cycles)));
  if (progress) progress(expected, expected);
  return tables;
}

// Trip-Fare analogue (docs/benchmarks/trips.md), after the NYC taxi trips of August 2015:
// ~20 M·scale trips between 195 neighbourhoods (NTAs) on a plane. Pickup demand follows a Zipf
// popularity per zone and a daily/weekly pattern; a trip's fare is the metered fare
// (2.5 + 2.5 per mile + 0.5 per minute) times a surge that rises with the pickup zone's current
// demand, plus noise. The same trips are stored twice: `pickups` sorted by pickup time and
// `dropoffs` sorted by dropoff time (one time order per table).
constexpr int kTripZones = 195;
constexpr int64_t kTripStart = 1438387200;  // 2015-08-01 00:00
constexpr int kTripDays = 31;
constexpr double kTrips = 20e6;

Result<std::vector<std::unique_ptr<store::Table>>> Trips(uint64_t seed, double scale,
                                                         const store::ProgressFn& progress) {
  Rng rng(seed);
  const int64_t n = std::max<int64_t>(20'000, static_cast<int64_t>(kTrips * scale));
  // Zones: positions (miles) and Zipf popularity.
  std::vector<double> zx(kTripZones), zy(kTripZones), weight(kTripZones), cdf(kTripZones);
  double total_w = 0;
  for (int z = 0; z < kTripZones; ++z) {
    zx[z] = rng.Uniform(0, 12);
    zy[z] = rng.Uniform(0, 20);
    weight[z] = 1.0 / std::pow(z + 1.0, 0.9);
    total_w += weight[z];
  }
  for (int z = 0; z < kTripZones; ++z) cdf[z] = (z ? cdf[z - 1] : 0) + weight[z] / total_w;
  auto pick_zone = [&](double u) {
    return static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  };
  // Hourly demand profile (trips per hour relative to the mean): quiet nights, rush hours.
  const double profile[24] = {0.9, 0.6, 0.4, 0.3, 0.25, 0.3, 0.6, 1.0, 1.2, 1.1, 1.0, 1.05,
                              1.1, 1.1, 1.15, 1.2, 1.25, 1.4, 1.6, 1.6, 1.5, 1.4, 1.3, 1.1};
  double profile_sum = 0;
  for (double v : profile) profile_sum += v;
  // A per-(zone, hour) demand shock (events, weather) that drives surge: AR(1) over hours.
  const int hours = kTripDays * 24;
  std::vector<float> shock(static_cast<size_t>(kTripZones) * hours);
  for (int z = 0; z < kTripZones; ++z) {
    double v = 0;
    for (int h = 0; h < hours; ++h) {
      v = 0.8 * v + 0.35 * rng.Normal();
      shock[static_cast<size_t>(z) * hours + h] = static_cast<float>(v);
    }
  }
  struct Trip {
    int64_t pickup, dropoff;
    int32_t pu, dz;
    float distance, fare, weekend;
  };
  std::vector<Trip> trips;
  trips.reserve(static_cast<size_t>(n));
  const double per_hour = static_cast<double>(n) / hours;
  for (int h = 0; h < hours; ++h) {
    const int hour_of_day = h % 24;
    const int day_of_week = (h / 24 + 5) % 7;  // 2015-08-01 was a Saturday (Monday = 0)
    const bool weekend = day_of_week >= 5;
    const double day_factor = weekend ? (hour_of_day < 5 ? 1.6 : 0.85) : 1.0;
    const int count = static_cast<int>(per_hour * profile[hour_of_day] * 24 / profile_sum * day_factor *
                                       rng.Uniform(0.9, 1.1));
    for (int i = 0; i < count; ++i) {
      const int pu = pick_zone(rng.Uniform());
      const int dz = pick_zone(rng.Uniform());
      const float s = shock[static_cast<size_t>(pu) * hours + h];
      const double dist = std::max(0.3, std::hypot(zx[pu] - zx[dz], zy[pu] - zy[dz]) * rng.Uniform(1.0, 1.4) +
                                            0.3 * rng.Uniform());
      const bool rush = (hour_of_day >= 7 && hour_of_day < 10) || (hour_of_day >= 16 && hour_of_day < 20);
      const double mph = (rush && !weekend ? 9.0 : 14.0) * rng.Uniform(0.7, 1.3);
      const double minutes = dist / mph * 60 + 2;
      const double surge = 1.0 + 0.25 * std::max(0.0, static_cast<double>(s));
      const double fare = (2.5 + 2.5 * dist + 0.5 * minutes) * surge + rng.Normal() * 1.5;
      const int64_t pickup = kTripStart + 3600LL * h + static_cast<int64_t>(rng.Uniform() * 3600);
      trips.push_back({pickup, pickup + static_cast<int64_t>(minutes * 60), pu, dz,
                       static_cast<float>(dist), static_cast<float>(std::max(2.5, fare)),
                       weekend ? 1.0f : 0.0f});
    }
    if (progress && h % 24 == 0) progress(static_cast<int64_t>(trips.size()), n);
  }
  auto make_table = [&](const char* name, const char* time_column) {
    std::vector<store::Column> cols;
    cols.push_back(MakeColumn("pickup_time", store::ColumnType::kTimestamp));
    cols.push_back(MakeColumn("dropoff_time", store::ColumnType::kTimestamp));
    cols.push_back(MakeColumn("pickup_zone", store::ColumnType::kString));
    cols.push_back(MakeColumn("dropoff_zone", store::ColumnType::kString));
    cols.push_back(MakeColumn("distance", store::ColumnType::kDouble));
    cols.push_back(MakeColumn("fare", store::ColumnType::kDouble));
    cols.push_back(MakeColumn("weekend", store::ColumnType::kDouble));
    for (int z = 0; z < kTripZones; ++z) {
      char zone[16];
      std::snprintf(zone, sizeof(zone), "NTA%03d", z);
      cols[2].dictionary.emplace_back(zone);
      cols[3].dictionary.emplace_back(zone);
    }
    internal::ReserveRows(cols, trips.size());
    for (const Trip& t : trips) {
      cols[0].ints.push_back(t.pickup);
      cols[1].ints.push_back(t.dropoff);
      cols[2].codes.push_back(t.pu);
      cols[3].codes.push_back(t.dz);
      cols[4].doubles.push_back(t.distance);
      cols[5].doubles.push_back(t.fare);
      cols[6].doubles.push_back(t.weekend);
    }
    return MakeTable(name, time_column, std::move(cols));
  };
  std::vector<std::unique_ptr<store::Table>> tables;
  std::stable_sort(trips.begin(), trips.end(),
                   [](const Trip& a, const Trip& b) { return a.pickup < b.pickup; });
  tables.push_back(make_table("pickups", "pickup_time"));
  std::stable_sort(trips.begin(), trips.end(),
                   [](const Trip& a, const Trip& b) { return a.dropoff < b.dropoff; });
  tables.push_back(make_table("dropoffs", "dropoff_time"));
  if (progress) progress(n, n);
  return tables;
}

// Median imbalance experiment (biathlon-spec D.8, Figs. 13-14): two-point groups whose median
// becomes unstable. For imbalance ratio r = (0.5 − p)/(0.5 + p), a group holds its value x
// (the true median) in a fraction 0.5 + p of its rows and −100 in the rest. 14 ratios from 0 to
// 0.9999, 40 groups each (x ~ U(0, 20), each group sampled independently), 10,000·scale rows
// per group. `requests` has one row per group, on day k for the k-th ratio, label = x.
constexpr double kImbalanceRatios[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
                                       0.8, 0.9, 0.95, 0.99, 0.999, 0.9999};
constexpr int kImbalanceGroups = 40;
constexpr int kImbalanceRows = 10'000;
constexpr int64_t kImbalanceStart = 1577836800;  // 2020-01-01: ratio k on day k

Result<std::vector<std::unique_ptr<store::Table>>> Imbalance(uint64_t seed, double scale,
                                                             const store::ProgressFn& progress) {
  Rng rng(seed);
  const int rows = std::max(1000, static_cast<int>(std::lround(kImbalanceRows * scale)));
  std::vector<store::Column> values;
  values.push_back(MakeColumn("gid", store::ColumnType::kString));
  values.push_back(MakeColumn("value", store::ColumnType::kDouble));
  std::vector<store::Column> requests;
  requests.push_back(MakeColumn("gid", store::ColumnType::kString));
  requests.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
  requests.push_back(MakeColumn("ratio", store::ColumnType::kDouble));
  requests.push_back(MakeColumn("x", store::ColumnType::kDouble));
  const int num_ratios = static_cast<int>(std::size(kImbalanceRatios));
  for (int k = 0; k < num_ratios; ++k) {
    const double r = kImbalanceRatios[k];
    const double majority = 1.0 / (1.0 + r);  // 0.5 + p, since r = (0.5 − p)/(0.5 + p)
    for (int g = 0; g < kImbalanceGroups; ++g) {
      char gid[32];
      std::snprintf(gid, sizeof(gid), "r%g_g%02d", r, g);
      const int32_t code = static_cast<int32_t>(values[0].dictionary.size());
      values[0].dictionary.emplace_back(gid);
      requests[0].dictionary.emplace_back(gid);
      const double x = rng.Uniform(0, 20);
      // Exactly round(majority · rows) rows hold x (the rest −100), in random order.
      const int with_x = static_cast<int>(std::ceil(majority * rows));
      for (int i = 0; i < rows; ++i) {
        values[0].codes.push_back(code);
        values[1].doubles.push_back(i < with_x ? x : -100.0);
      }
      requests[0].codes.push_back(code);
      requests[1].ints.push_back(kImbalanceStart + 86400LL * k + 60LL * g);
      requests[2].doubles.push_back(r);
      requests[3].doubles.push_back(x);
    }
    if (progress) progress(static_cast<int64_t>(k + 1) * kImbalanceGroups * rows,
                           static_cast<int64_t>(num_ratios) * kImbalanceGroups * rows);
  }
  std::vector<std::unique_ptr<store::Table>> tables;
  tables.push_back(MakeTable("values", "", std::move(values)));
  tables.push_back(MakeTable("requests", "t", std::move(requests)));
  return tables;
}

}  // namespace

std::vector<std::string> GeneratorNames() {
  return {"battery", "bearing", "fraud", "imbalance", "stress", "student", "tick", "trips",
          "turbofan"};
}

Result<std::vector<std::unique_ptr<store::Table>>> GenerateDataset(std::string_view name,
                                                                   uint64_t seed, double scale,
                                                                   const store::ProgressFn& progress) {
  if (!(scale > 0 && scale <= 10)) {
    return Status::InvalidArgument("generator scale must be in (0, 10]");
  }
  if (name == "bearing") return Bearing(seed, scale, progress);
  if (name == "tick") return Tick(seed, scale, progress);
  if (name == "turbofan") return Turbofan(seed, scale, progress);
  if (name == "trips") return Trips(seed, scale, progress);
  if (name == "imbalance") return Imbalance(seed, scale, progress);
  if (name == "battery") return internal::Battery(seed, scale, progress);
  if (name == "fraud") return internal::Fraud(seed, scale, progress);
  if (name == "student") return internal::Student(seed, scale, progress);
  if (name == "stress") return internal::Stress(seed, scale, progress);
  std::string names;
  for (const std::string& n : GeneratorNames()) names += (names.empty() ? "" : ", ") + n;
  return Status::NotFound("unknown data generator '" + std::string(name) + "' (known: " + names + ")");
}

}  // namespace apx::eval
