// Stress suite (docs/benchmarks/stress.md): hostile data for the accuracy guarantee. Every
// pipeline under pipelines/stress/ aggregates one column whose distribution misbehaves for a
// sampling estimator (rare huge values, infinite-variance tails, heavy ties, near-constant
// columns, unseen singletons, nested windows over the same rows, windows too noisy to sample),
// and its label is computed here from the EXACT windowed aggregates of that column, plus
// request fields and noise, so that the trained model depends on the aggregates.
//
// Tables:
//   `events` (t, acct, amount, claim, latency, items, refund, merchant, qty, signal):
//     16 accounts × 24 days × ~4,000·scale rows a day each (~1.6 M rows at scale 1), so a 7-day
//     window matches ≥ 26,000·scale rows and a 10-day window ≥ 38,000·scale.
//   `requests` (t, acct, x1, x2 and one label column per events pipeline): 5,000 requests,
//     uniform over days 10..23 (every window is full).
//   `bursts` (t, src, load): 4 sources × 10 days × ~43,200·scale rows a day (~1.7 M at scale 1),
//     so that a 12-hour window matches ≥ 20,900·scale rows (and a 4-day one ≥ 167,000·scale).
//   `burst_requests` (t, src, x1, x2, y_nested): 4,500 requests over days 4..9.
// Each column's level follows a per-key offset plus a daily (bursts: hourly) AR(1) path.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "eval/generator_util.h"

namespace apx::eval::internal {
namespace {

constexpr int64_t kDay = 86'400;
constexpr int64_t kHour = 3'600;

constexpr int kAccounts = 16;
constexpr int kEventDays = 24;
constexpr double kEventsPerDay = 4'000;          // per account at scale 1
constexpr int64_t kEventStart = 1677628800;      // 2023-03-01 00:00 UTC
constexpr int kRequestFirstDay = 10;             // the widest window reaches back 10 days
constexpr int kEventRequests = 5'000;

constexpr int kSources = 4;
constexpr int kBurstDays = 10;
constexpr double kBurstsPerHour = 1'800;         // per source at scale 1 (43,200 a day)
constexpr int64_t kBurstStart = 1680307200;      // 2023-04-01 00:00 UTC
constexpr int kBurstRequestFirstDay = 4;         // the outer window reaches back 4 days
constexpr int kBurstRequests = 4'500;

// Hostile parameters (docs/benchmarks/stress.md).
constexpr double kJumpRate = 1e-4;     // rare-jumps: share of whale rows
constexpr double kJumpFactor = 1'000;  // rare-jumps: whale / typical amount
constexpr double kParetoAlpha = 1.3;   // pareto: tail index (infinite variance)
constexpr double kLogSigma = 2.2;      // lognormal: σ of log(latency)
constexpr double kRefundRate = 1e-3;   // near-constant: share of non-zero rows
constexpr double kSignalNoise = 20;    // wide: per-row noise sd (the level varies by ~0.7)
constexpr int kSingletonBase = 1'000;  // distinct: singleton merchant codes start here

enum EventColumn {
  kAmount, kClaim, kLatency, kItems, kRefund, kMerchant, kQty, kSignal, kNumEventColumns
};
constexpr const char* kEventColumnNames[kNumEventColumns] = {
    "amount", "claim", "latency", "items", "refund", "merchant", "qty", "signal"};

// A stationary AR(1) path with unit variance: z_i = ρ·z_{i−1} + √(1 − ρ²)·ε_i.
std::vector<double> Ar1(Rng& rng, int n, double rho) {
  std::vector<double> z(static_cast<size_t>(n));
  double v = rng.Normal();
  for (double& x : z) {
    x = v;
    v = rho * v + std::sqrt(1 - rho * rho) * rng.Normal();
  }
  return z;
}

// Poisson(λ) by multiplication of uniforms (Knuth; λ is small here).
int Poisson(Rng& rng, double lambda) {
  const double limit = std::exp(-lambda);
  int k = 0;
  for (double p = rng.Uniform(); p > limit; p *= rng.Uniform()) ++k;
  return k;
}

double Exponential(Rng& rng) { return -std::log(rng.Uniform()); }

// `n` sorted times, uniform in [start, start + length).
void SortedTimes(Rng& rng, int64_t start, int64_t length, int n, std::vector<int64_t>* out) {
  const size_t first = out->size();
  for (int i = 0; i < n; ++i) out->push_back(start + static_cast<int64_t>(rng.Uniform() * length));
  std::sort(out->begin() + static_cast<std::ptrdiff_t>(first), out->end());
}

// The rows [a, b) of sorted `times` in the window [t − width, t).
std::pair<size_t, size_t> WindowRows(const std::vector<int64_t>& times, int64_t t, int64_t width) {
  const auto a = std::lower_bound(times.begin(), times.end(), t - width);
  const auto b = std::lower_bound(a, times.end(), t);
  return {static_cast<size_t>(a - times.begin()), static_cast<size_t>(b - times.begin())};
}

// The q-quantile as agg/ defines it: x_(r), r = max(1, ⌈q·n⌉). Reorders `v`.
double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return std::nan("");
  const size_t n = v.size();
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
  const size_t r = std::clamp<size_t>(rank, 1, n);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(r - 1), v.end());
  return v[r - 1];
}

// Standardises `v` in place to mean 0 and standard deviation 1 (over finite entries; others
// become 0).
void Standardize(std::vector<double>& v) {
  double sum = 0, ss = 0;
  int n = 0;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    sum += x;
    ss += x * x;
    ++n;
  }
  const double mean = n > 0 ? sum / n : 0;
  const double sd = n > 1 ? std::sqrt(std::max(0.0, ss / n - mean * mean)) : 0;
  for (double& x : v) x = std::isfinite(x) && sd > 0 ? (x - mean) / sd : 0.0;
}

// A label from an aggregate signal and the request signal, both standardised:
// 10·(0.8·aggregates + 0.4·request + 0.35·noise); the aggregates carry ~70 % of its variance.
std::vector<double> Label(std::vector<double> aggregates, const std::vector<double>& request,
                          Rng& rng) {
  Standardize(aggregates);
  std::vector<double> y(aggregates.size());
  for (size_t i = 0; i < y.size(); ++i) {
    y[i] = 10 * (0.8 * aggregates[i] + 0.4 * request[i] + 0.35 * rng.Normal());
  }
  return y;
}

// 1 for the top 30 % of a label, else 0.
std::vector<double> TopShare(const std::vector<double>& y) {
  std::vector<double> sorted = y;
  const double cut = Quantile(sorted, 0.7);
  std::vector<double> out(y.size());
  for (size_t i = 0; i < y.size(); ++i) out[i] = y[i] > cut ? 1.0 : 0.0;
  return out;
}

// Sum of `a·z(x) + b·z(y)` element-wise, with z standardisation.
std::vector<double> Mix(std::vector<double> x, double a, std::vector<double> y, double b) {
  Standardize(x);
  Standardize(y);
  for (size_t i = 0; i < x.size(); ++i) x[i] = a * x[i] + b * y[i];
  return x;
}

// Rows of one key, time-sorted.
struct Series {
  std::vector<int64_t> t;
  std::vector<double> v[kNumEventColumns];
  std::vector<int32_t> merchant;  // the merchant codes before hashing (for the labels)
};

// Request fields shared by both request tables: x1 ~ N(0, 1), x2 uniform in {0..9}; the
// request signal is x1 + 0.8·[x2 ≥ 7], standardised.
struct RequestFields {
  std::vector<double> x1, x2, signal;
};

RequestFields MakeRequestFields(Rng& rng, int n) {
  RequestFields f;
  for (int i = 0; i < n; ++i) {
    f.x1.push_back(rng.Normal());
    f.x2.push_back(static_cast<double>(rng.Next() % 10));
    f.signal.push_back(f.x1.back() + (f.x2.back() >= 7 ? 0.8 : 0.0));
  }
  Standardize(f.signal);
  return f;
}

// Sorted request times (uniform seconds in [first_day, last_day) of a table starting at
// `start`) with a uniformly drawn key each.
void MakeRequestTimes(Rng& rng, int64_t start, int first_day, int last_day, int keys, int n,
                      std::vector<int64_t>* times, std::vector<int32_t>* key) {
  SortedTimes(rng, start + first_day * kDay, (last_day - first_day) * kDay, n, times);
  for (int i = 0; i < n; ++i) key->push_back(static_cast<int32_t>(rng.Next() % keys));
}

}  // namespace

Result<Tables> Stress(uint64_t seed, double scale, const store::ProgressFn& progress) {
  Rng rng(seed);
  const int64_t total = static_cast<int64_t>((kEventsPerDay * 1.05 * kAccounts * kEventDays +
                                              kBurstsPerHour * 24 * kSources * kBurstDays) *
                                             scale);
  int64_t done = 0;

  // --- events: one account at a time, day by day.
  std::vector<Series> series(kAccounts);
  int32_t next_singleton = kSingletonBase;
  for (int k = 0; k < kAccounts; ++k) {
    double offset[kNumEventColumns];
    std::vector<double> z[kNumEventColumns];
    for (int c = 0; c < kNumEventColumns; ++c) {
      offset[c] = rng.Normal();
      z[c] = Ar1(rng, kEventDays, 0.7);
    }
    const int common_merchants = 45 + (k * 7) % 11;  // 45..55 regular merchants per account
    Series& s = series[k];
    for (int d = 0; d < kEventDays; ++d) {
      auto level = [&](int c, double a, double b) { return a * offset[c] + b * z[c][d]; };
      const double rows = kEventsPerDay * scale * rng.Uniform(0.95, 1.15);
      const int n = std::max(20, static_cast<int>(std::lround(rows)));
      SortedTimes(rng, kEventStart + d * kDay, kDay, n, &s.t);
      const double typical = 30 * std::exp(level(kAmount, 0.03, 0.02));
      const double x_min = 10 * std::exp(level(kClaim, 0.1, 0.1));
      const double log_latency = std::log(20.0) + level(kLatency, 0.15, 0.15);
      const double items = std::clamp(2.5 + level(kItems, 0.6, 0.6), 1.0, 4.5);
      const double refund_rate = kRefundRate * std::exp(level(kRefund, 0.4, 0.4));
      const double singleton_rate = 1.2 * std::exp(level(kMerchant, 0.5, 0.5)) / n;
      const double qty = 5 * std::exp(level(kQty, 0.15, 0.15));
      const double signal = level(kSignal, 0.5, 0.5);
      for (int i = 0; i < n; ++i) {
        const bool whale = rng.Uniform() < kJumpRate;
        s.v[kAmount].push_back(whale ? kJumpFactor * typical * std::exp(0.2 * rng.Normal())
                                     : typical * std::exp(0.5 * rng.Normal() - 0.125));
        s.v[kClaim].push_back(x_min * std::pow(rng.Uniform(), -1 / kParetoAlpha));
        s.v[kLatency].push_back(std::exp(log_latency + kLogSigma * rng.Normal()));
        s.v[kItems].push_back(Poisson(rng, items));
        s.v[kRefund].push_back(rng.Uniform() < refund_rate ? 200 * Exponential(rng) : 0.0);
        // Codes go through a multiplicative hash so that the singletons' codes interleave
        // with the regular merchants' (as real ids do): no numeric outlier marks them.
        const uint32_t raw = rng.Uniform() < singleton_rate
                                 ? static_cast<uint32_t>(next_singleton++)
                                 : static_cast<uint32_t>(rng.Next() % common_merchants);
        s.v[kMerchant].push_back(static_cast<double>(raw * 2654435761u));
        s.merchant.push_back(static_cast<int32_t>(raw));
        s.v[kQty].push_back(qty * 0.5 * (Exponential(rng) + Exponential(rng)));
        s.v[kSignal].push_back(signal + kSignalNoise * rng.Normal());
      }
      done += n;
    }
    if (progress) progress(std::min(done, total), total);
  }

  // --- requests on events, and their exact windowed aggregates.
  std::vector<int64_t> req_t;
  std::vector<int32_t> req_key;
  MakeRequestTimes(rng, kEventStart, kRequestFirstDay, kEventDays, kAccounts, kEventRequests,
                   &req_t, &req_key);
  const RequestFields fields = MakeRequestFields(rng, kEventRequests);
  // Prefix sums per account (amount, latency, refund, refund², qty, signal).
  enum Prefix { kPAmount, kPLatency, kPRefund, kPRefund2, kPQty, kPSignal, kNumPrefix };
  std::vector<std::vector<double>> prefix[kNumPrefix];
  for (auto& p : prefix) p.resize(kAccounts);
  for (int k = 0; k < kAccounts; ++k) {
    const Series& s = series[k];
    const double* src[kNumPrefix] = {s.v[kAmount].data(), s.v[kLatency].data(), s.v[kRefund].data(),
                                     nullptr, s.v[kQty].data(), s.v[kSignal].data()};
    for (int p = 0; p < kNumPrefix; ++p) {
      std::vector<double>& out = prefix[p][k];
      out.assign(s.t.size() + 1, 0.0);
      for (size_t i = 0; i < s.t.size(); ++i) {
        const double x = p == kPRefund2 ? s.v[kRefund][i] * s.v[kRefund][i] : src[p][i];
        out[i + 1] = out[i] + x;
      }
    }
  }
  auto window_sum = [&](int p, int k, std::pair<size_t, size_t> w) {
    return prefix[p][k][w.second] - prefix[p][k][w.first];
  };
  enum Agg {
    kAmountAvg7, kAmountSum10, kClaimAvg, kClaimStd, kLatencyMedian, kLatencyP90, kLatencyAvg,
    kItemsMedian, kItemsP90, kItemsAvg, kRefundAvg, kRefundMax, kRefundStd, kMerchantDistinct,
    kQtySum7, kQtyAvg10, kSignalAvg, kNumAggs
  };
  std::vector<double> agg[kNumAggs];
  for (auto& a : agg) a.resize(kEventRequests);
  std::vector<double> scratch;
  std::vector<int32_t> seen(static_cast<size_t>(next_singleton), -1);
  for (int r = 0; r < kEventRequests; ++r) {
    const int k = req_key[r];
    const Series& s = series[k];
    const auto w7 = WindowRows(s.t, req_t[r], 7 * kDay);
    const auto w10 = WindowRows(s.t, req_t[r], 10 * kDay);
    const double n7 = static_cast<double>(w7.second - w7.first);
    const double n10 = static_cast<double>(w10.second - w10.first);
    agg[kAmountAvg7][r] = window_sum(kPAmount, k, w7) / n7;
    agg[kAmountSum10][r] = window_sum(kPAmount, k, w10);
    agg[kLatencyAvg][r] = window_sum(kPLatency, k, w7) / n7;
    const double refund_avg = window_sum(kPRefund, k, w7) / n7;
    agg[kRefundAvg][r] = refund_avg;
    agg[kRefundStd][r] = std::sqrt(
        std::max(0.0, (window_sum(kPRefund2, k, w7) - n7 * refund_avg * refund_avg) / (n7 - 1)));
    agg[kQtySum7][r] = window_sum(kPQty, k, w7);
    agg[kQtyAvg10][r] = window_sum(kPQty, k, w10) / n10;
    agg[kSignalAvg][r] = window_sum(kPSignal, k, w7) / n7;
    // One pass over the 7-day window for the rest: Welford for the Pareto column (its squares
    // are too large for prefix sums), the maximum refund, distinct merchants, the latencies.
    double mean = 0, m2 = 0, refund_max = 0;
    int distinct = 0;
    scratch.clear();
    for (size_t i = w7.first; i < w7.second; ++i) {
      const double x = s.v[kClaim][i];
      const double n = static_cast<double>(i - w7.first + 1);
      const double d = x - mean;
      mean += d / n;
      m2 += d * (x - mean);
      refund_max = std::max(refund_max, s.v[kRefund][i]);
      int32_t& last = seen[static_cast<size_t>(s.merchant[i])];
      if (last != r) {
        last = r;
        ++distinct;
      }
      scratch.push_back(s.v[kLatency][i]);
    }
    agg[kClaimAvg][r] = mean;
    agg[kClaimStd][r] = std::sqrt(m2 / (n7 - 1));
    agg[kRefundMax][r] = refund_max;
    agg[kMerchantDistinct][r] = distinct;
    agg[kLatencyMedian][r] = Quantile(scratch, 0.5);
    agg[kLatencyP90][r] = Quantile(scratch, 0.9);
    scratch.assign(s.v[kItems].begin() + static_cast<std::ptrdiff_t>(w7.first),
                   s.v[kItems].begin() + static_cast<std::ptrdiff_t>(w7.second));
    agg[kItemsAvg][r] = std::accumulate(scratch.begin(), scratch.end(), 0.0) / n7;
    agg[kItemsMedian][r] = Quantile(scratch, 0.5);
    agg[kItemsP90][r] = Quantile(scratch, 0.9);
  }
  auto log_of = [](std::vector<double> v) {
    for (double& x : v) x = std::log(x);
    return v;
  };
  const std::vector<double> jumps = Mix(agg[kAmountAvg7], 1.0, agg[kAmountSum10], 0.5);
  std::vector<std::pair<const char*, std::vector<double>>> labels;
  labels.emplace_back("y_jumps", Label(jumps, fields.signal, rng));
  labels.emplace_back("y_jumps_hi", TopShare(Label(jumps, fields.signal, rng)));
  labels.emplace_back(
      "y_pareto",
      Label(Mix(log_of(agg[kClaimAvg]), 1.0, log_of(agg[kClaimStd]), 0.5), fields.signal, rng));
  labels.emplace_back(
      "y_lognormal",
      Label(Mix(Mix(log_of(agg[kLatencyMedian]), 1.0, log_of(agg[kLatencyP90]), 0.7), 1.0,
                log_of(agg[kLatencyAvg]), 0.3),
            fields.signal, rng));
  labels.emplace_back("y_ties", Label(Mix(Mix(agg[kItemsMedian], 1.0, agg[kItemsP90], 0.7), 1.0,
                                          agg[kItemsAvg], 0.5),
                                      fields.signal, rng));
  labels.emplace_back("y_sparse", Label(Mix(Mix(agg[kRefundAvg], 1.0, agg[kRefundMax], 0.5), 1.0,
                                            agg[kRefundStd], 0.5),
                                        fields.signal, rng));
  labels.emplace_back("y_distinct", Label(agg[kMerchantDistinct], fields.signal, rng));
  labels.emplace_back("y_sum",
                      Label(Mix(agg[kQtySum7], 1.0, agg[kQtyAvg10], 0.5), fields.signal, rng));
  labels.emplace_back("y_wide", Label(agg[kSignalAvg], fields.signal, rng));

  // --- bursts: one source at a time, hour by hour; the level is an hourly AR(1).
  std::vector<std::vector<int64_t>> burst_t(kSources);
  std::vector<std::vector<double>> burst_load(kSources);
  const int hours = kBurstDays * 24;
  for (int src = 0; src < kSources; ++src) {
    const double offset = rng.Normal();
    const std::vector<double> z = Ar1(rng, hours, 0.97);
    for (int h = 0; h < hours; ++h) {
      const double rows = kBurstsPerHour * scale * rng.Uniform(0.97, 1.07);
      const int n = std::max(20, static_cast<int>(std::lround(rows)));
      SortedTimes(rng, kBurstStart + h * kHour, kHour, n, &burst_t[src]);
      const double level = 50 + 2 * (0.5 * offset + z[h]);
      for (int i = 0; i < n; ++i) burst_load[src].push_back(level + 8 * rng.Normal());
      done += n;
    }
    if (progress) progress(std::min(done, total), total);
  }
  std::vector<int64_t> breq_t;
  std::vector<int32_t> breq_src;
  MakeRequestTimes(rng, kBurstStart, kBurstRequestFirstDay, kBurstDays, kSources, kBurstRequests,
                   &breq_t, &breq_src);
  const RequestFields bfields = MakeRequestFields(rng, kBurstRequests);
  std::vector<double> inner(kBurstRequests), outer(kBurstRequests);
  {
    std::vector<std::vector<double>> load_prefix(kSources);
    for (int src = 0; src < kSources; ++src) {
      load_prefix[src].assign(burst_load[src].size() + 1, 0.0);
      for (size_t i = 0; i < burst_load[src].size(); ++i) {
        load_prefix[src][i + 1] = load_prefix[src][i] + burst_load[src][i];
      }
    }
    for (int r = 0; r < kBurstRequests; ++r) {
      const int src = breq_src[r];
      const auto w12h = WindowRows(burst_t[src], breq_t[r], 12 * kHour);
      const auto w4d = WindowRows(burst_t[src], breq_t[r], 4 * kDay);
      inner[r] = (load_prefix[src][w12h.second] - load_prefix[src][w12h.first]) /
                 static_cast<double>(w12h.second - w12h.first);
      outer[r] = (load_prefix[src][w4d.second] - load_prefix[src][w4d.first]) /
                 static_cast<double>(w4d.second - w4d.first);
    }
  }
  const std::vector<double> y_nested = Label(Mix(inner, 1.0, outer, 0.7), bfields.signal, rng);

  // --- tables.
  Tables tables;
  {
    std::vector<store::Column> ev;
    ev.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
    ev.push_back(MakeColumn("acct", store::ColumnType::kString));
    for (const char* name : kEventColumnNames) {
      ev.push_back(MakeColumn(name, store::ColumnType::kDouble));
    }
    size_t rows = 0;
    for (const Series& s : series) rows += s.t.size();
    ReserveRows(ev, rows);
    for (int k = 0; k < kAccounts; ++k) {
      char acct[16];
      std::snprintf(acct, sizeof(acct), "a%02d", k);
      ev[1].dictionary.emplace_back(acct);
      Series& s = series[k];
      ev[0].ints.insert(ev[0].ints.end(), s.t.begin(), s.t.end());
      ev[1].codes.insert(ev[1].codes.end(), s.t.size(), k);
      for (int c = 0; c < kNumEventColumns; ++c) {
        ev[2 + c].doubles.insert(ev[2 + c].doubles.end(), s.v[c].begin(), s.v[c].end());
      }
      s = Series();  // release as we go
    }
    std::vector<store::Column> req;
    req.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
    req.push_back(MakeColumn("acct", store::ColumnType::kString));
    req.push_back(MakeColumn("x1", store::ColumnType::kDouble));
    req.push_back(MakeColumn("x2", store::ColumnType::kDouble));
    for (const auto& [name, y] : labels) {
      req.push_back(MakeColumn(name, store::ColumnType::kDouble));
    }
    req[0].ints = req_t;
    req[1].dictionary = ev[1].dictionary;
    req[1].codes = req_key;
    req[2].doubles = fields.x1;
    req[3].doubles = fields.x2;
    for (size_t l = 0; l < labels.size(); ++l) req[4 + l].doubles = labels[l].second;
    tables.push_back(MakeTable("events", "t", std::move(ev)));
    tables.push_back(MakeTable("requests", "t", std::move(req)));
  }
  {
    std::vector<store::Column> b;
    b.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
    b.push_back(MakeColumn("src", store::ColumnType::kString));
    b.push_back(MakeColumn("load", store::ColumnType::kDouble));
    size_t rows = 0;
    for (const auto& t : burst_t) rows += t.size();
    ReserveRows(b, rows);
    for (int src = 0; src < kSources; ++src) {
      char name[16];
      std::snprintf(name, sizeof(name), "s%d", src);
      b[1].dictionary.emplace_back(name);
      b[0].ints.insert(b[0].ints.end(), burst_t[src].begin(), burst_t[src].end());
      b[1].codes.insert(b[1].codes.end(), burst_t[src].size(), src);
      b[2].doubles.insert(b[2].doubles.end(), burst_load[src].begin(), burst_load[src].end());
    }
    std::vector<store::Column> req;
    req.push_back(MakeColumn("t", store::ColumnType::kTimestamp));
    req.push_back(MakeColumn("src", store::ColumnType::kString));
    req.push_back(MakeColumn("x1", store::ColumnType::kDouble));
    req.push_back(MakeColumn("x2", store::ColumnType::kDouble));
    req.push_back(MakeColumn("y_nested", store::ColumnType::kDouble));
    req[0].ints = breq_t;
    req[1].dictionary = b[1].dictionary;
    req[1].codes = breq_src;
    req[2].doubles = bfields.x1;
    req[3].doubles = bfields.x2;
    req[4].doubles = y_nested;
    tables.push_back(MakeTable("bursts", "t", std::move(b)));
    tables.push_back(MakeTable("burst_requests", "t", std::move(req)));
  }
  if (progress) progress(total, total);
  return tables;
}

}  // namespace apx::eval::internal
