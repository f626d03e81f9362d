// Fraud-Detection analogue (biathlon-spec D.5; docs/benchmarks/fraud.md), after the TalkingData
// AdTracking click log: 3 days of ad clicks (2017-11-06 16:00 to 11-09 16:00). Click volume
// per IP is Zipf-distributed, so a few heavy hitters (NATs, bot farms) make most clicks, as in
// the original (whose top IP has about a million clicks). Each IP has a "bot" propensity that
// grows with its volume; bots hammer a few apps from one OS through a few fraud-prone channels
// and rarely download (is_attributed). The label therefore depends on the per-IP counts the
// pipeline computes (clicks per IP per day, per IP and app, per IP, app and OS), on the
// channel mix (the median variant's median(channel)), and on the click itself, with noise.
//
// Table `clicks` (time-sorted): click_time, ip, app, os (strings: the key columns), the numeric
// model inputs app_id, os_id, device, channel, and is_attributed (0/1).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "eval/generator_util.h"

namespace apx::eval::internal {
namespace {

constexpr int kFraudIps = 60'000;
constexpr int kFraudApps = 300;
constexpr int kFraudOs = 200;
constexpr int kFraudChannels = 180;
constexpr int kFraudBotChannels = 12;       // channels 0..11 carry most bot traffic
constexpr double kFraudClicks = 20e6;
constexpr int64_t kFraudStart = 1509984000;  // 2017-11-06 16:00 UTC
constexpr int kFraudHours = 72;

// Sampler of a Zipf-like distribution over [0, n): P(k) ∝ 1 / (k + 1)^s.
class Zipf {
 public:
  Zipf(int n, double s) : cdf_(n) {
    double total = 0;
    for (int k = 0; k < n; ++k) cdf_[k] = total += 1.0 / std::pow(k + 1.0, s);
    for (double& c : cdf_) c /= total;
  }
  int operator()(double u) const {
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end() - 1, u) - cdf_.begin());
  }
  double P(int k) const { return cdf_[k] - (k ? cdf_[k - 1] : 0); }

 private:
  std::vector<double> cdf_;
};

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

Result<Tables> Fraud(uint64_t seed, double scale, const store::ProgressFn& progress) {
  Rng rng(seed);
  const int64_t n = std::max<int64_t>(50'000, static_cast<int64_t>(kFraudClicks * scale));
  const Zipf ip_dist(kFraudIps, 1.0), app_dist(kFraudApps, 1.1), os_dist(kFraudOs, 1.2),
      channel_dist(kFraudChannels, 0.8);
  // Per-IP traits. Bot propensity rises with the IP's share of traffic (rank 0 is the heaviest).
  struct Ip {
    float bot;
    int16_t os, apps[3];
    double bias;  // IP-level download propensity (people behind it)
  };
  std::vector<Ip> ips(kFraudIps);
  for (int i = 0; i < kFraudIps; ++i) {
    const double volume = std::log10(ip_dist.P(i) * n + 1);  // log10 of expected clicks
    ips[i].bot = static_cast<float>(Sigmoid(1.6 * (volume - 3.0) + 1.2 * rng.Normal()));
    ips[i].os = static_cast<int16_t>(os_dist(rng.Uniform()));
    for (int16_t& a : ips[i].apps) a = static_cast<int16_t>(app_dist(rng.Uniform()));
    ips[i].bias = 0.6 * rng.Normal();
  }
  // Per-app and per-channel download effects; each app has a home channel.
  std::vector<double> app_effect(kFraudApps), channel_effect(kFraudChannels);
  std::vector<int> app_channel(kFraudApps);
  for (int a = 0; a < kFraudApps; ++a) {
    app_effect[a] = 1.5 * std::sin(a / 20.0) + 0.4 * rng.Normal();  // app families
    app_channel[a] = static_cast<int>(rng.Next() % kFraudChannels);
  }
  for (int c = 0; c < kFraudChannels; ++c) {
    channel_effect[c] = c < kFraudBotChannels ? -1.0 : 0.6 * std::cos(c / 15.0) + 0.3 * rng.Normal();
  }
  // Diurnal click rate (China time: busy 00-16 UTC, quiet 16-24 UTC), as a CDF over 72 hours.
  std::vector<double> hour_cdf(kFraudHours);
  double total = 0;
  for (int h = 0; h < kFraudHours; ++h) {
    const int utc_hour = (16 + h) % 24;
    hour_cdf[h] = total += utc_hour < 16 ? 1.0 + 0.4 * std::sin(utc_hour / 16.0 * 3.14159) : 0.35;
  }
  for (double& c : hour_cdf) c /= total;

  struct Click {
    int64_t time;
    int32_t ip;
    int16_t app, os, device, channel;
    int8_t attributed;
  };
  std::vector<Click> clicks(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    Click& c = clicks[static_cast<size_t>(i)];
    c.ip = ip_dist(rng.Uniform());
    const Ip& ip = ips[c.ip];
    const bool bot_click = rng.Uniform() < ip.bot;
    const int h = static_cast<int>(std::lower_bound(hour_cdf.begin(), hour_cdf.end() - 1,
                                                    rng.Uniform()) - hour_cdf.begin());
    c.time = kFraudStart + 3600LL * h + static_cast<int64_t>(rng.Uniform() * 3600);
    if (bot_click) {
      c.app = ip.apps[rng.Next() % 3];
      c.os = ip.os;
      c.device = 1;
      c.channel = static_cast<int16_t>(rng.Next() % kFraudBotChannels);
    } else {
      c.app = rng.Uniform() < 0.5 ? ip.apps[rng.Next() % 3]
                                  : static_cast<int16_t>(app_dist(rng.Uniform()));
      c.os = rng.Uniform() < 0.7 ? ip.os : static_cast<int16_t>(os_dist(rng.Uniform()));
      c.device = static_cast<int16_t>(rng.Uniform() < 0.9 ? 1 : 2 + rng.Next() % 60);
      c.channel = static_cast<int16_t>(rng.Uniform() < 0.6 ? app_channel[c.app]
                                                           : channel_dist(rng.Uniform()));
    }
    // Download: people on normal channels download some apps; bots almost never do.
    const double logit = -1.4 + app_effect[c.app] + channel_effect[c.channel] + ip.bias -
                         3.0 * (bot_click ? 1.0 : 0.0) - 2.0 * ip.bot +
                         (c.device == 1 ? 0.0 : 0.8);
    c.attributed = rng.Uniform() < Sigmoid(logit) ? 1 : 0;
    if (progress && (i + 1) % 1'000'000 == 0) progress(i + 1, n);
  }
  std::sort(clicks.begin(), clicks.end(), [](const Click& a, const Click& b) {
    return a.time != b.time ? a.time < b.time : a.ip < b.ip;
  });

  std::vector<store::Column> cols;
  cols.push_back(MakeColumn("click_time", store::ColumnType::kTimestamp));
  cols.push_back(MakeColumn("ip", store::ColumnType::kString));
  cols.push_back(MakeColumn("app", store::ColumnType::kString));
  cols.push_back(MakeColumn("os", store::ColumnType::kString));
  for (const char* name : {"app_id", "os_id", "device", "channel", "is_attributed"}) {
    cols.push_back(MakeColumn(name, store::ColumnType::kDouble));
  }
  char text[16];
  for (int i = 0; i < kFraudIps; ++i) {
    std::snprintf(text, sizeof(text), "%d", 1000 + i * 7 % kFraudIps);  // rank hidden in the id
    cols[1].dictionary.emplace_back(text);
  }
  for (int a = 0; a < kFraudApps; ++a) cols[2].dictionary.push_back(std::to_string(a));
  for (int o = 0; o < kFraudOs; ++o) cols[3].dictionary.push_back(std::to_string(o));
  ReserveRows(cols, clicks.size());
  for (const Click& c : clicks) {
    cols[0].ints.push_back(c.time);
    cols[1].codes.push_back(c.ip);
    cols[2].codes.push_back(c.app);
    cols[3].codes.push_back(c.os);
    cols[4].doubles.push_back(c.app);
    cols[5].doubles.push_back(c.os);
    cols[6].doubles.push_back(c.device);
    cols[7].doubles.push_back(c.channel);
    cols[8].doubles.push_back(c.attributed);
  }
  if (progress) progress(n, n);
  Tables tables;
  tables.push_back(MakeTable("clicks", "click_time", std::move(cols)));
  return tables;
}

}  // namespace apx::eval::internal
