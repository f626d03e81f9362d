#include "serve/loadgen.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "common/stats.h"
#include "serve/service.h"

namespace apx::serve {
namespace {

using Clock = std::chrono::steady_clock;

Result<double> ParseRate(std::string_view text, double unit_rate, std::string_view piece) {
  const bool relative = !text.empty() && text.back() == 'x';
  if (relative) text.remove_suffix(1);
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(v >= 0) || !std::isfinite(v)) {
    return Status::InvalidArgument("schedule piece '" + std::string(piece) + "': bad rate '" +
                                   std::string(text) + "'");
  }
  if (relative) {
    if (!(unit_rate > 0)) {
      return Status::InvalidArgument("schedule piece '" + std::string(piece) +
                                     "': an x-rate needs a unit rate (the exact-level capacity)");
    }
    v *= unit_rate;
  }
  return v;
}

struct Record {
  double latency_ms = 0;
  int status = 0;     // HTTP status, 0: no answer (connection failed)
  bool degraded = false;
  bool dropped = false;
  bool retry_after = false;  // a 503 carried Retry-After
  int level = -1;
  double prediction = NAN;
  double delta = NAN;  // δ the answer reports
  double tau = NAN;    // τ the answer reports
};

}  // namespace

Result<std::vector<RateSegment>> ParseSchedule(std::string_view text, double unit_rate) {
  std::vector<RateSegment> out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view piece = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t at = piece.find('@');
    if (at == std::string_view::npos) {
      return Status::InvalidArgument("schedule piece '" + std::string(piece) +
                                     "': expected RATE@DURATION, e.g. 200@10s or 100-400@30s");
    }
    const std::string_view rates = piece.substr(0, at);
    std::string_view duration = piece.substr(at + 1);
    RateSegment seg;
    const size_t dash = rates.find('-');
    APX_ASSIGN_OR_RETURN(seg.from, ParseRate(rates.substr(0, dash), unit_rate, piece));
    seg.to = seg.from;
    if (dash != std::string_view::npos) {
      APX_ASSIGN_OR_RETURN(seg.to, ParseRate(rates.substr(dash + 1), unit_rate, piece));
    }
    if (duration.empty() || duration.back() != 's') {
      return Status::InvalidArgument("schedule piece '" + std::string(piece) +
                                     "': duration needs an s suffix, e.g. 10s");
    }
    duration.remove_suffix(1);
    auto [ptr, ec] = std::from_chars(duration.data(), duration.data() + duration.size(), seg.seconds);
    if (ec != std::errc() || ptr != duration.data() + duration.size() || !(seg.seconds > 0) ||
        seg.seconds > 86400) {
      return Status::InvalidArgument("schedule piece '" + std::string(piece) + "': bad duration");
    }
    out.push_back(seg);
  }
  if (out.empty()) return Status::InvalidArgument("empty schedule");
  return out;
}

std::vector<double> PoissonArrivals(const std::vector<RateSegment>& schedule, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(1.0);
  std::vector<double> arrivals;
  double start = 0;            // start time of the current segment
  double pending = gap(rng);   // integrated rate until the next arrival
  for (const RateSegment& seg : schedule) {
    const double a = seg.from, slope = (seg.to - seg.from) / seg.seconds;
    const double total = a * seg.seconds + 0.5 * slope * seg.seconds * seg.seconds;  // Λ(T)
    double pos = 0;  // integrated rate consumed inside this segment
    while (pos + pending <= total) {
      pos += pending;
      pending = gap(rng);
      // Solve a·t + slope/2·t² = pos for t in [0, T].
      const double t = std::abs(slope) < 1e-12
                           ? pos / a
                           : (-a + std::sqrt(std::max(0.0, a * a + 2 * slope * pos))) / slope;
      arrivals.push_back(start + std::clamp(t, 0.0, seg.seconds));
    }
    pending -= total - pos;
    start += seg.seconds;
  }
  return arrivals;
}

nlohmann::json LoadgenReport::ToJson() const {
  nlohmann::json per_second = nlohmann::json::array();
  for (const LoadgenSecond& s : seconds) {
    per_second.push_back({{"t", s.t},
                          {"offered", s.offered},
                          {"answered", s.answered},
                          {"degraded", s.degraded},
                          {"dropped", s.dropped},
                          {"rejected", s.rejected},
                          {"errors", s.errors},
                          {"late", s.late},
                          {"p50_ms", s.p50_ms},
                          {"p95_ms", s.p95_ms},
                          {"p99_ms", s.p99_ms},
                          {"violation_rate", s.violation_rate},
                          {"agreement", s.agreement},
                          {"mean_level", s.mean_level}});
  }
  return {{"summary",
           {{"duration_s", duration_s},
            {"offered", offered},
            {"answered", answered},
            {"degraded", degraded},
            {"dropped", dropped},
            {"rejected", rejected},
            {"errors", errors},
            {"late", late},
            {"violation_rate", violation_rate},
            {"agreement", agreement},
            {"meet_reported", meet_reported},
            {"mean_tau_reported", mean_tau_reported},
            {"label_metric_served", label_metric_served},
            {"label_metric_exact", label_metric_exact},
            {"p50_ms", p50_ms},
            {"p99_ms", p99_ms},
            {"refused_p50_ms", refused_p50_ms},
            {"refused_p99_ms", refused_p99_ms},
            {"refused_max_ms", refused_max_ms},
            {"refused_without_retry_after", refused_without_retry_after}}},
          {"per_second", per_second}};
}

Result<LoadgenReport> RunLoadgen(const LoadgenOptions& options) {
  if (options.bodies.empty()) return Status::InvalidArgument("loadgen: no request bodies");
  {
    httplib::Client probe(options.host, options.port);
    probe.set_connection_timeout(2);
    auto r = probe.Get("/healthz");
    if (!r || r->status != 200) {
      return Status::Unavailable("loadgen: no server answering at " + options.host + ":" +
                                 std::to_string(options.port));
    }
  }
  const std::vector<double> arrivals = PoissonArrivals(options.schedule, options.seed);
  std::vector<Record> records(arrivals.size());
  const std::string path = "/v1/pipelines/" + options.pipeline + "/predict";
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  auto worker = [&] {
    httplib::Client client(options.host, options.port);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);
    client.set_read_timeout(30);
    client.set_connection_timeout(5);
    while (true) {
      const size_t i = next.fetch_add(1);
      if (i >= arrivals.size()) return;
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(arrivals[i]));
      std::this_thread::sleep_until(due);
      auto res = client.Post(path.c_str(), options.bodies[i % options.bodies.size()], "application/json");
      Record& rec = records[i];
      rec.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
      if (res) {
        rec.status = res->status;
        try {
          const nlohmann::json j = nlohmann::json::parse(res->body);
          if (res->status == 200) {
            rec.degraded = j.value("degraded", false);
            rec.prediction = j.value("prediction", NAN);
            rec.delta = j.value("delta", NAN);
            rec.tau = j.value("tau", NAN);
            auto level = ParseLevel(j.value("level", std::string()));
            rec.level = level.ok() ? *level : -1;
          } else if (res->status == 503) {
            rec.retry_after = res->has_header("Retry-After");
            rec.dropped = j["error"].value("code", std::string()) == "dropped";
          }
        } catch (const nlohmann::json::exception&) {
          rec.status = -1;  // unparseable answer: counted as an error
        }
      }
      done.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < std::max(1, options.connections); ++c) threads.emplace_back(worker);
  if (options.progress) {
    while (done.load() < arrivals.size()) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const double t = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, "\rloadgen: %.0f s, %zu/%zu requests", t, done.load(), arrivals.size());
    }
    std::fprintf(stderr, "\n");
  }
  for (std::thread& t : threads) t.join();

  // Per-second aggregates, by scheduled arrival.
  LoadgenReport report;
  double total_seconds = 0;
  for (const RateSegment& s : options.schedule) total_seconds += s.seconds;
  report.duration_s = total_seconds;
  const size_t n_seconds = static_cast<size_t>(std::ceil(total_seconds));
  report.seconds.resize(n_seconds);
  std::vector<std::vector<double>> lat(n_seconds);
  std::vector<int> known(n_seconds, 0), meets(n_seconds, 0), levels(n_seconds, 0);
  std::vector<double> level_sum(n_seconds, 0), all_lat, refused_lat;
  int known_total = 0, meets_total = 0, labelled = 0, meets_reported = 0;
  double tau_reported_sum = 0;
  double served_metric = 0, exact_metric = 0;
  for (size_t i = 0; i < arrivals.size(); ++i) {
    const size_t sec = std::min(n_seconds - 1, static_cast<size_t>(arrivals[i]));
    const bool counted = arrivals[i] >= options.warmup_s;
    LoadgenSecond& s = report.seconds[sec];
    const Record& r = records[i];
    ++s.offered;
    if (r.status == 200) {
      ++s.answered;
      s.degraded += r.degraded;
      lat[sec].push_back(r.latency_ms);
      if (counted) all_lat.push_back(r.latency_ms);
      if (r.latency_ms > options.slo_ms) ++s.late;
      if (r.level >= 0) {
        level_sum[sec] += r.level;
        ++levels[sec];
      }
      const double exact = options.exact.empty() ? NAN : options.exact[i % options.exact.size()];
      if (std::isfinite(exact) && std::isfinite(r.prediction)) {
        const bool meet = options.binary ? (r.prediction >= 0.5) == (exact >= 0.5)
                                         : std::abs(r.prediction - exact) <= options.delta;
        ++known[sec];
        meets[sec] += meet;
        if (counted) {
          ++known_total;
          meets_total += meet;
          // Against the guarantee the answer itself reports (its level's δ and τ).
          const bool meet_reported = options.binary ? meet : std::abs(r.prediction - exact) <= r.delta;
          meets_reported += meet_reported;
          tau_reported_sum += std::isfinite(r.tau) ? r.tau : 0;
        }
        if (counted && !options.labels.empty()) {
          const double label = options.labels[i % options.labels.size()];
          if (options.binary) {
            served_metric += ((r.prediction >= 0.5) == (label >= 0.5)) ? 100.0 : 0.0;
            exact_metric += ((exact >= 0.5) == (label >= 0.5)) ? 100.0 : 0.0;
          } else {
            served_metric += std::abs(r.prediction - label);
            exact_metric += std::abs(exact - label);
          }
          ++labelled;
        }
      }
    } else if (r.status == 503) {
      (r.dropped ? s.dropped : s.rejected) += 1;
      if (counted) {
        refused_lat.push_back(r.latency_ms);
        report.refused_without_retry_after += !r.retry_after;
      }
    } else {
      ++s.errors;
    }
  }
  for (size_t sec = 0; sec < n_seconds; ++sec) {
    LoadgenSecond& s = report.seconds[sec];
    s.t = static_cast<double>(sec);
    s.p50_ms = Percentile(lat[sec], 50);
    s.p95_ms = Percentile(lat[sec], 95);
    s.p99_ms = Percentile(lat[sec], 99);
    const int violations = s.late + s.dropped + s.rejected + s.errors;
    s.violation_rate = s.offered > 0 ? static_cast<double>(violations) / s.offered : 0;
    s.agreement = known[sec] > 0 ? static_cast<double>(meets[sec]) / known[sec] : 1;
    s.mean_level = levels[sec] > 0 ? level_sum[sec] / levels[sec] : 0;
    if (static_cast<double>(sec) + 1 <= options.warmup_s) continue;  // warm-up: per second only
    report.offered += s.offered;
    report.answered += s.answered;
    report.degraded += s.degraded;
    report.dropped += s.dropped;
    report.rejected += s.rejected;
    report.errors += s.errors;
    report.late += s.late;
  }
  const int violations = report.late + report.dropped + report.rejected + report.errors;
  report.violation_rate = report.offered > 0 ? static_cast<double>(violations) / report.offered : 0;
  report.agreement = known_total > 0 ? static_cast<double>(meets_total) / known_total : 1;
  if (known_total > 0) {
    report.meet_reported = static_cast<double>(meets_reported) / known_total;
    report.mean_tau_reported = tau_reported_sum / known_total;
  }
  if (labelled > 0) {
    report.label_metric_served = served_metric / labelled;
    report.label_metric_exact = exact_metric / labelled;
  }
  report.p50_ms = Percentile(all_lat, 50);
  report.p99_ms = Percentile(all_lat, 99);
  report.refused_p50_ms = Percentile(refused_lat, 50);
  report.refused_p99_ms = Percentile(refused_lat, 99);
  report.refused_max_ms = refused_lat.empty() ? 0 : *std::max_element(refused_lat.begin(), refused_lat.end());
  return report;
}

}  // namespace apx::serve
