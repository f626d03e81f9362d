#include "eval/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>
#include <thread>

#include "backend/clickhouse_backend.h"
#include "common/file.h"
#include "common/progress.h"
#include "eval/generators.h"
#include "eval/requests.h"
#include "model/linear_model.h"
#include "model/loader.h"
#include "model/mlp.h"
#include "model/xgboost_model.h"

namespace apx::eval {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

LatencyStats Stats(const std::vector<double>& ms) {
  LatencyStats s;
  s.p50 = Percentile(ms, 50);
  s.p95 = Percentile(ms, 95);
  s.p99 = Percentile(ms, 99);
  s.p999 = Percentile(ms, 99.9);
  s.mean = ms.empty() ? 0 : std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  return s;
}

double Mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

double StdDev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = Mean(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / (v.size() - 1));
}

nlohmann::json LatencyJson(const LatencyStats& s) {
  return {{"p50", s.p50}, {"p95", s.p95}, {"p99", s.p99}, {"p999", s.p999}, {"mean", s.mean}};
}

}  // namespace

double R2(const std::vector<double>& y_true, const std::vector<double>& y_pred) {
  const double m = Mean(y_true);
  double ss_res = 0, ss_tot = 0;
  for (size_t i = 0; i < y_true.size(); ++i) {
    ss_res += (y_true[i] - y_pred[i]) * (y_true[i] - y_pred[i]);
    ss_tot += (y_true[i] - m) * (y_true[i] - m);
  }
  return ss_tot > 0 ? 1.0 - ss_res / ss_tot : 0.0;
}

double F1(const std::vector<double>& y_true, const std::vector<double>& y_pred) {
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < y_true.size(); ++i) {
    const bool t = y_true[i] >= 0.5, p = y_pred[i] >= 0.5;
    tp += t && p;
    fp += !t && p;
    fn += t && !p;
  }
  return tp > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
}

Status PrepareData(const pipeline::PipelineSpec& spec, bool progress) {
  namespace fs = std::filesystem;
  std::vector<std::string> done;  // "name/seed" of datasets generated in this call
  for (const pipeline::TableSpec& t : spec.tables) {
    if (!t.generated() || fs::exists(t.snapshot)) continue;
    const std::string id = t.generator.name + "/" + std::to_string(t.generator.seed);
    if (std::find(done.begin(), done.end(), id) != done.end()) continue;
    done.push_back(id);
    char label[128];
    std::snprintf(label, sizeof(label), "generate %s (seed %llu, scale %g)", t.generator.name.c_str(),
                  static_cast<unsigned long long>(t.generator.seed), spec.scale);
    std::unique_ptr<ProgressBar> bar;
    store::ProgressFn fn;
    if (progress) {
      fn = [&](int64_t d, int64_t total) {
        if (bar == nullptr) bar = std::make_unique<ProgressBar>(label, total);
        bar->Update(d);
      };
    }
    APX_ASSIGN_OR_RETURN(auto tables, GenerateDataset(t.generator.name, t.generator.seed, spec.scale, fn));
    if (bar) bar->Finish();
    // Every spec table made by this generator and seed gets its snapshot now.
    for (const pipeline::TableSpec& target : spec.tables) {
      if (target.generator.name != t.generator.name || target.generator.seed != t.generator.seed) continue;
      auto it = std::find_if(tables.begin(), tables.end(), [&](const auto& g) {
        return g != nullptr && g->name() == target.generator.table;
      });
      if (it == tables.end()) {
        return Status::InvalidArgument("table '" + target.schema.name + "': generator '" +
                                       target.generator.name + "' makes no table '" +
                                       target.generator.table + "'");
      }
      store::Table& g = **it;
      for (const store::ColumnSpec& c : target.schema.columns) {
        auto col = g.column(c.name);
        if (!col.ok() || (*col)->type != c.type) {
          return Status::InvalidArgument(
              "table '" + target.schema.name + "': column '" + c.name + "' (" +
              std::string(store::ColumnTypeName(c.type)) + ") does not match generator '" +
              target.generator.name + "' table '" + target.generator.table + "'");
        }
      }
      if (g.schema().time_column != target.schema.time_column) {
        return Status::InvalidArgument("table '" + target.schema.name + "': time_column must be '" +
                                       g.schema().time_column + "' for generator table '" +
                                       target.generator.table + "'");
      }
      // Same columns, under the spec's table name.
      const std::string generated_name = g.name();
      g.set_name(target.schema.name);
      APX_RETURN_IF_ERROR(store::WriteSnapshot(g, target.snapshot));
      g.set_name(generated_name);
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<pipeline::Pipeline>> PrepareAndOpen(const pipeline::PipelineSpec& spec,
                                                           int threads, bool progress) {
  APX_RETURN_IF_ERROR(PrepareData(spec, progress));
  const bool have_model = std::filesystem::exists(spec.model.path);
  std::unique_ptr<ProgressBar> bar;
  pipeline::OpenOptions options{.load_model = have_model};
  if (progress) {
    options.progress = [&](int64_t done, int64_t total) {
      if (bar == nullptr) bar = std::make_unique<ProgressBar>("load " + spec.name, total);
      bar->Update(done);
    };
  }
  auto p = pipeline::Pipeline::Open(spec, options);
  if (bar) bar->Finish();
  if (!p.ok() || have_model) return p;
  if (progress) {
    std::fprintf(stderr, "%s: no model at %s yet, training it\n", spec.name.c_str(),
                 spec.model.path.c_str());
  }
  APX_ASSIGN_OR_RETURN(TrainReport report, TrainPipeline(**p, threads, progress));
  if (progress) {
    std::fprintf(stderr, "%s: trained on %d requests, train %s %.4f\n", spec.name.c_str(),
                 report.requests, report.metric_name.c_str(), report.metric_value);
  }
  return p;
}

Status Prepare(const pipeline::PipelineSpec& spec, int threads, bool progress) {
  if (std::filesystem::exists(spec.model.path)) return PrepareData(spec, progress);
  return PrepareAndOpen(spec, threads, progress).status();
}

Result<TrainReport> TrainPipeline(pipeline::Pipeline& pipeline, int threads, bool progress) {
  const pipeline::PipelineSpec& spec = pipeline.spec();
  TrainReport report;
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  APX_RETURN_IF_ERROR(MakeRequests(pipeline, spec.train, &requests, &labels));
  report.requests = static_cast<int>(requests.size());
  const size_t d = pipeline.num_features();
  std::vector<float> X(requests.size() * d);
  threads = std::max(1, threads);

  // Exact features, in parallel: one session per thread, requests interleaved.
  const auto feature_start = Clock::now();
  ProgressBar bar("train " + spec.name + ": exact features", static_cast<int64_t>(requests.size()), progress);
  std::atomic<int64_t> done{0};
  std::vector<Status> statuses(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      pipeline::Session session(pipeline);
      for (size_t i = static_cast<size_t>(t); i < requests.size(); i += static_cast<size_t>(threads)) {
        Status s = session.ExactFeatures(requests[i], std::span<float>(X.data() + i * d, d));
        if (!s.ok()) {
          statuses[t] = s;
          return;
        }
        bar.Update(++done);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  bar.Finish();
  for (const Status& s : statuses) APX_RETURN_IF_ERROR(s);
  report.feature_seconds = Seconds(feature_start);

  std::vector<float> y(labels.begin(), labels.end());
  model::TrainOptions options{.task = spec.task,
                              .booster = spec.model.booster,
                              .num_trees = spec.model.trees,
                              .max_depth = spec.model.max_depth,
                              .eta = spec.model.eta,
                              .nthread = threads,
                              .seed = spec.train.seed,
                              .scale_pos_weight = spec.model.scale_pos_weight,
                              .feature_names = pipeline.feature_names()};
  const auto train_start = Clock::now();
  APX_RETURN_IF_ERROR(CheckReplaceable(spec.model.path, "model file", model::IsModelFileHead));
  APX_RETURN_IF_ERROR(CreateParentDirectories(spec.model.path));
  if (spec.model.booster == "ols") {
    if (progress) std::fprintf(stderr, "train %s: least squares...\n", spec.name.c_str());
    APX_ASSIGN_OR_RETURN(model::LinearForm form, model::FitLeastSquares(X, requests.size(), d, y));
    report.train_seconds = Seconds(train_start);
    APX_ASSIGN_OR_RETURN(const std::string json,
                         model::WithFeatureNames(model::LinearModelJson(form, spec.task), pipeline.feature_names()));
    APX_RETURN_IF_ERROR(WriteFileAtomically(spec.model.path, json, "model file", model::IsModelFileHead));
  } else if (spec.model.booster == "mlp") {
    model::MlpOptions mlp{.hidden = spec.model.hidden,
                          .learning_rate = spec.model.eta,
                          .seed = spec.train.seed};
    std::string shape = std::to_string(d);
    for (int width : mlp.hidden) shape += "-" + std::to_string(width);
    if (progress) {
      std::fprintf(stderr, "train %s: mlp %s-1, up to %d epochs...\n", spec.name.c_str(),
                   shape.c_str(), mlp.max_epochs);
    }
    int epochs = 0;
    double last_loss = 0;
    mlp.on_epoch = [&](int epoch, double loss) {
      epochs = epoch;
      last_loss = loss;
      if (progress && epoch % 50 == 0) {
        std::fprintf(stderr, "train %s: mlp epoch %d, loss %.6g\n", spec.name.c_str(), epoch, loss);
      }
    };
    APX_ASSIGN_OR_RETURN(const std::string trained, model::TrainMlp(X, requests.size(), d, y, spec.task, mlp));
    APX_ASSIGN_OR_RETURN(const std::string json, model::WithFeatureNames(trained, pipeline.feature_names()));
    report.train_seconds = Seconds(train_start);
    if (progress) {
      std::fprintf(stderr, "train %s: mlp stopped after %d epochs, loss %.6g (%.1f s)\n",
                   spec.name.c_str(), epochs, last_loss, report.train_seconds);
    }
    APX_RETURN_IF_ERROR(WriteFileAtomically(spec.model.path, json, "model file", model::IsModelFileHead));
  } else {
    if (progress) std::fprintf(stderr, "train %s: fitting %s with %d trees...\n", spec.name.c_str(),
                               spec.model.booster.c_str(), spec.model.trees);
    APX_ASSIGN_OR_RETURN(auto xgb, model::TrainXGBoost(X, requests.size(), d, y, options));
    report.train_seconds = Seconds(train_start);
    APX_RETURN_IF_ERROR(xgb->Save(spec.model.path));
  }
  report.model_path = spec.model.path;

  APX_ASSIGN_OR_RETURN(auto compiled, model::LoadModel(spec.model.path, spec.task));
  std::vector<float> out(requests.size());
  APX_RETURN_IF_ERROR(compiled->Predict(X, requests.size(), out));
  std::vector<double> pred(out.begin(), out.end());
  if (spec.task == model::Task::kBinary) {
    for (double& p : pred) p = p >= 0.5 ? 1.0 : 0.0;
    report.metric_name = "f1";
    report.metric_value = F1(labels, pred);
  } else {
    report.metric_name = "r2";
    report.metric_value = R2(labels, pred);
  }
  APX_RETURN_IF_ERROR(pipeline.SetModel(std::move(compiled)));
  return report;
}

Result<EvalReport> RunEval(const pipeline::Pipeline& pipeline, const EvalOptions& options) {
  const pipeline::PipelineSpec& spec = pipeline.spec();
  pipeline::RequestSetSpec set = options.requests ? *options.requests : spec.test;
  if (options.n > 0) set.n = options.n;
  std::vector<pipeline::Request> requests;
  std::vector<double> labels;
  APX_RETURN_IF_ERROR(MakeRequests(pipeline, set, &requests, &labels));
  const size_t n = requests.size();

  EvalReport r;
  r.pipeline = spec.name;
  r.task = std::string(model::TaskName(spec.task));
  r.requests = static_cast<int>(n);
  r.metric_name = spec.task == model::Task::kBinary ? "f1" : "r2";

  pipeline::Session session(pipeline);
  pipeline::PredictOptions exact_opts{.exact = true, .delta = options.delta, .tau = options.tau};
  pipeline::PredictOptions approx_opts{.exact = false,
                                       .delta = options.delta,
                                       .tau = options.tau,
                                       .alpha = options.alpha,
                                       .gamma = options.gamma};

  // Warm-up, not measured: one exact pass over every request touches all the rows either path
  // will read, so that neither measured pass pays first-touch costs (page faults, the VM's
  // lazily backed memory) that the other does not. Without it, whichever pass runs second
  // looked up to 3x faster on large generated tables.
  pipeline::Prediction pred;
  if (options.warm_up) {
    ProgressBar bar("eval " + spec.name + ": warm-up", static_cast<int64_t>(n), options.progress);
    for (size_t i = 0; i < n; ++i) {
      APX_RETURN_IF_ERROR(session.Predict(requests[i], exact_opts, &pred));
      bar.Update(static_cast<int64_t>(i + 1));
    }
  }
  for (size_t i = 0; i < std::min<size_t>(n, 20); ++i) {
    APX_RETURN_IF_ERROR(session.Predict(requests[i], exact_opts, &pred));
    APX_RETURN_IF_ERROR(session.Predict(requests[i], approx_opts, &pred));
  }

  // Two passes over the same requests, both measured in this run (by default the exact path
  // first, then the approximate one; neither benefits from the other having just touched the
  // same rows of the same request).
  std::vector<double> exact_y(n), exact_ms(n), approx_y(n), approx_ms(n);
  double exact_rows = 0, exact_data_ms = 0, exact_model_ms = 0;
  std::vector<double> matching(n);
  auto exact_one = [&](size_t i) -> Status {
    APX_RETURN_IF_ERROR(session.Predict(requests[i], exact_opts, &pred));
    exact_y[i] = pred.y;
    exact_ms[i] = pred.total_ms;
    exact_rows += static_cast<double>(pred.rows_read);
    exact_data_ms += pred.data_ms;
    exact_model_ms += pred.model_ms;
    matching[i] = static_cast<double>(pred.rows_matching);
    return Status::Ok();
  };
  double rounds = 0, ratio = 0, conf = 0, cut = 0, low = 0, meet = 0;
  const size_t num_queries = pipeline.queries().size();
  std::vector<double> q_ratio(num_queries, 0.0), q_rows(num_queries, 0.0);
  double data_ms = 0, model_ms = 0, planner_ms = 0;
  std::vector<double> approx_delta(n);
  r.per_request.resize(n);
  // Reads sent to ClickHouse servers by the approximate pass, and the hedges among them.
  const auto* ch = dynamic_cast<const backend::ClickHouseBackend*>(&pipeline.backend());
  int64_t shard_reads = 0, hedged_reads = 0;
  auto approx_one = [&](size_t i) -> Status {
    const int64_t reads0 = ch != nullptr ? ch->reads_sent() : 0, hedges0 = ch != nullptr ? ch->hedges_sent() : 0;
    APX_RETURN_IF_ERROR(session.Predict(requests[i], approx_opts, &pred));
    if (ch != nullptr) {
      shard_reads += ch->reads_sent() - reads0;
      hedged_reads += ch->hedges_sent() - hedges0;
    }
    approx_y[i] = pred.y;
    approx_ms[i] = pred.total_ms;
    approx_delta[i] = pred.delta;
    for (size_t q = 0; q < num_queries; ++q) {
      q_ratio[q] += pred.sample_ratio[q];
      q_rows[q] += static_cast<double>(pred.query_rows[q]);
    }
    r.delta = pred.delta;
    r.tau = pred.tau;
    RequestRecord& rec = r.per_request[i];
    rec.approx_ms = pred.total_ms;
    rec.approx_data_ms = pred.data_ms;
    rec.approx_model_ms = pred.model_ms;
    rec.rows_matching = pred.rows_matching;
    rec.rounds = pred.rounds;
    rec.sample_ratio = pred.rows_matching > 0 ? static_cast<double>(pred.rows_read) / pred.rows_matching : 1.0;
    rec.confidence = pred.confidence;
    rec.cut_over = pred.cut_over;
    rec.claimed = pred.confidence >= pred.tau;
    rec.shards = pred.shards;
    rec.shards_answered = pred.shards_answered;
    rec.strata_reread = pred.strata_reread;
    rec.exact_unavailable = pred.exact_unavailable;
    rec.stopped = pipeline::StopReasonName(pred.stopped);
    rounds += pred.rounds;
    ratio += rec.sample_ratio;
    conf += pred.confidence;
    cut += pred.cut_over;
    low += pred.confidence < pred.tau;
    data_ms += pred.data_ms;
    model_ms += pred.model_ms;
    planner_ms += pred.planner_ms;
    return Status::Ok();
  };
  // One measured pass over every request; `step(i)` answers request i one way or both.
  auto pass = [&](const char* label, const std::function<Status(size_t)>& step) -> Status {
    ProgressBar bar("eval " + spec.name + ": " + label, static_cast<int64_t>(n), options.progress);
    for (size_t i = 0; i < n; ++i) {
      APX_RETURN_IF_ERROR(step(i));
      bar.Update(static_cast<int64_t>(i + 1));
    }
    return Status::Ok();
  };
  if (options.interleave) {
    APX_RETURN_IF_ERROR(pass("interleaved", [&](size_t i) -> Status {
      const bool exact_first = (i % 2 == 0) != options.approx_first;
      APX_RETURN_IF_ERROR(exact_first ? exact_one(i) : approx_one(i));
      return exact_first ? approx_one(i) : exact_one(i);
    }));
  } else if (options.approx_first) {
    APX_RETURN_IF_ERROR(pass("approximate", approx_one));
    APX_RETURN_IF_ERROR(pass("exact", exact_one));
  } else {
    APX_RETURN_IF_ERROR(pass("exact", exact_one));
    APX_RETURN_IF_ERROR(pass("approximate", approx_one));
  }
  double degraded = 0, reread = 0, claimed = 0, claimed_met = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool met = spec.task == model::Task::kBinary
                         ? approx_y[i] == exact_y[i]
                         : std::abs(approx_y[i] - exact_y[i]) <= approx_delta[i];
    meet += met;
    r.per_request[i].met = met;
    const RequestRecord& rec = r.per_request[i];
    degraded += rec.shards > 0 && rec.shards_answered < rec.shards;
    reread += rec.strata_reread > 0;
    if (rec.claimed) {
      ++claimed;
      claimed_met += met;
    }
    r.per_request[i].exact_ms = exact_ms[i];
  }
  const double dn = static_cast<double>(std::max<size_t>(n, 1));
  r.exact_latency = Stats(exact_ms);
  r.approx_latency = Stats(approx_ms);
  r.exact_metric = spec.task == model::Task::kBinary ? F1(labels, exact_y) : R2(labels, exact_y);
  r.approx_metric = spec.task == model::Task::kBinary ? F1(labels, approx_y) : R2(labels, approx_y);
  for (size_t i = 0; i < n; ++i) r.exact_mae += std::abs(labels[i] - exact_y[i]) / dn;
  r.exact_rows_per_s = exact_data_ms > 0 ? exact_rows / (exact_data_ms / 1e3) : 0;
  r.exact_data_ms = exact_data_ms / dn;
  r.exact_model_ms = exact_model_ms / dn;
  r.mean_matching_rows = Mean(matching);
  r.max_matching_rows = matching.empty() ? 0 : *std::max_element(matching.begin(), matching.end());
  r.exact_pred_std = StdDev(exact_y);
  r.meet_rate = meet / dn;
  r.avg_rounds = rounds / dn;
  r.avg_sample_ratio = ratio / dn;
  r.avg_confidence = conf / dn;
  r.cut_over_rate = cut / dn;
  r.low_confidence_rate = low / dn;
  r.degraded_rate = degraded / dn;
  r.reread_rate = reread / dn;
  r.shard_reads = shard_reads;
  r.hedged_reads = hedged_reads;
  r.claimed_meet_rate = claimed > 0 ? claimed_met / claimed : std::nan("");
  r.approx_data_ms = data_ms / dn;
  r.approx_model_ms = model_ms / dn;
  r.approx_planner_ms = planner_ms / dn;
  for (size_t q = 0; q < num_queries; ++q) {
    const std::string& name = spec.features[pipeline.queries()[q].spec_index].name;
    r.query_sample_ratio.emplace_back(name, q_ratio[q] / dn);
    r.query_rows.emplace_back(name, q_rows[q] / dn);
  }
  r.speedup_p50 = r.approx_latency.p50 > 0 ? r.exact_latency.p50 / r.approx_latency.p50 : 0;
  r.speedup_mean = r.approx_latency.mean > 0 ? r.exact_latency.mean / r.approx_latency.mean : 0;
  return r;
}

std::string EvalReport::PerRequestCsv() const {
  std::string out =
      "request,rows_matching,exact_ms,approx_ms,approx_data_ms,approx_model_ms,rounds,sample_ratio,"
      "confidence,cut_over,met,shards,shards_answered,exact_unavailable,stopped\n";
  char line[320];
  for (size_t i = 0; i < per_request.size(); ++i) {
    const RequestRecord& x = per_request[i];
    std::snprintf(line, sizeof(line), "%zu,%lld,%.4f,%.4f,%.4f,%.4f,%d,%.4f,%.4f,%d,%d,%d,%d,%d,%.*s\n", i,
                  static_cast<long long>(x.rows_matching), x.exact_ms, x.approx_ms, x.approx_data_ms,
                  x.approx_model_ms, x.rounds, x.sample_ratio, x.confidence, x.cut_over ? 1 : 0,
                  x.met ? 1 : 0, x.shards, x.shards_answered, x.exact_unavailable ? 1 : 0,
                  static_cast<int>(x.stopped.size()), x.stopped.data());
    out += line;
  }
  return out;
}

nlohmann::json EvalReport::ToJson() const {
  nlohmann::json j;
  j["pipeline"] = pipeline;
  j["task"] = task;
  j["requests"] = requests;
  j["tau"] = tau;
  j["delta"] = delta;
  j["rows_per_exact_request"] = {{"mean", mean_matching_rows}, {"max", max_matching_rows}};
  j["exact_prediction_std"] = exact_pred_std;
  j["exact"] = {{"latency_ms", LatencyJson(exact_latency)},
                {"metric", {{"name", metric_name}, {"value", exact_metric}}},
                {"rows_per_s", exact_rows_per_s},
                {"mae", exact_mae},
                {"split_ms", {{"data", exact_data_ms}, {"model", exact_model_ms}}}};
  j["approx"] = {{"latency_ms", LatencyJson(approx_latency)},
                 {"metric", {{"name", metric_name}, {"value", approx_metric}}},
                 {"meet_rate", meet_rate},
                 {"avg_rounds", avg_rounds},
                 {"avg_sample_ratio", avg_sample_ratio},
                 {"avg_confidence", avg_confidence},
                 {"cut_over_rate", cut_over_rate},
                 {"low_confidence_rate", low_confidence_rate},
                 {"degraded_rate", degraded_rate},
                 {"reread_rate", reread_rate},
                 {"shard_reads", shard_reads},
                 {"hedged_reads", hedged_reads},
                 {"claimed_meet_rate", std::isnan(claimed_meet_rate) ? nlohmann::json() : nlohmann::json(claimed_meet_rate)},
                 {"split_ms", {{"data", approx_data_ms}, {"model", approx_model_ms}, {"planner", approx_planner_ms}}}};
  nlohmann::json queries = nlohmann::json::object();
  for (size_t q = 0; q < query_sample_ratio.size(); ++q) {
    queries[query_sample_ratio[q].first] = {{"matching_rows", query_rows[q].second},
                                            {"sample_ratio", query_sample_ratio[q].second}};
  }
  j["approx"]["queries"] = queries;
  j["speedup_p50"] = speedup_p50;
  j["speedup_mean"] = speedup_mean;
  return j;
}

std::string EvalReport::ToText() const {
  char buf[2048];
  std::snprintf(buf, sizeof(buf),
                "pipeline %s (%s), %d test requests, tau %.2f, delta %.3g\n"
                "  rows per exact request: mean %.0f, max %.0f; exact path reads %.0f M rows/s\n"
                "  exact : p50 %.3f ms  p95 %.3f ms   %s %.4f\n"
                "  approx: p50 %.3f ms  p95 %.3f ms   %s %.4f   meet rate %.3f\n"
                "          rounds %.2f, sample ratio %.3f, confidence %.3f, cut-over %.1f%%\n"
                "          split: data %.3f ms, model %.3f ms, planner %.3f ms\n"
                "  speedup p50 %.2fx (mean %.2fx)\n"
                "  approx p99 %.3f ms, p99.9 %.3f ms; degraded %.1f%% (missed strata read again: %.1f%%), claimed-tau meet rate %.3f\n"
                "  shard reads %lld, of them hedged %lld\n",
                pipeline.c_str(), task.c_str(), requests, tau, delta, mean_matching_rows,
                max_matching_rows, exact_rows_per_s / 1e6, exact_latency.p50, exact_latency.p95,
                metric_name.c_str(), exact_metric, approx_latency.p50, approx_latency.p95,
                metric_name.c_str(), approx_metric, meet_rate, avg_rounds, avg_sample_ratio,
                avg_confidence, 100 * cut_over_rate, approx_data_ms, approx_model_ms,
                approx_planner_ms, speedup_p50, speedup_mean, approx_latency.p99, approx_latency.p999,
                100 * degraded_rate, 100 * reread_rate, claimed_meet_rate, static_cast<long long>(shard_reads),
                static_cast<long long>(hedged_reads));
  return buf;
}

}  // namespace apx::eval
