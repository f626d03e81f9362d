// The `apxserve` command: parses the arguments into a subcommand's Args (cli/commands.h) and
// runs it; each subcommand lives in its own file.
#include <CLI/CLI.hpp>

#include <csignal>

#include "cli/cli_common.h"
#include "cli/commands.h"

namespace {

// The exit code of a command's Status (printing the error, if any).
int Finish(const apx::Status& s) { return s.ok() ? 0 : apx::cli::Fail(s); }

}  // namespace

int main(int argc, char** argv) {
  using namespace apx::cli;
  // A peer that closes a socket mid-write (a cut ClickHouse answer, a client gone) is an
  // error on that socket, not the end of the process.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"apxserve: serve ML inference pipelines fast, with approximate aggregation "
               "features and a guaranteed accuracy bound"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (--scale) may follow the subcommand

  GlobalOptions global;
  app.add_option("--scale", global.scale,
                 "data scale of generated tables (1 = published scale; smaller for quick runs)")
      ->check(CLI::Range(1e-6, 10.0));
  app.add_flag("--no-cut-over", global.no_cut_over,
               "never switch a request to the exact path (studies of the approximate path)");

  IngestArgs ingest;
  auto* ingest_cmd = app.add_subcommand("ingest", "Read a pipeline's CSV tables into binary snapshots (or, with backend: clickhouse, into ClickHouse)");
  ingest_cmd->add_option("--pipeline,-p", ingest.spec_path, "pipeline spec (YAML)")->required();

  TrainArgs train;
  auto* train_cmd = app.add_subcommand("train", "Train the pipeline's model on exact features");
  train_cmd->add_option("--pipeline,-p", train.spec_path, "pipeline spec (YAML)")->required();
  train_cmd->add_option("--threads", train.threads, "threads for feature computation and training")
      ->check(CLI::Range(1, 256));
  train_cmd->add_flag("--json", train.json, "print a JSON report");

  PredictArgs predict;
  auto* predict_cmd = app.add_subcommand("predict", "Answer one request (JSON in, JSON out)");
  predict_cmd->add_option("--pipeline,-p", predict.spec_path, "pipeline spec (YAML)")->required();
  predict_cmd->add_option("--request,-r", predict.request, "request JSON, @file, or - for stdin")->required();
  predict_cmd->add_flag("--exact", predict.exact, "compute every feature exactly");
  predict_cmd->add_option("--delta", predict.delta, "error bound (default: the spec's)")
      ->check(FiniteNonNegative());
  predict_cmd->add_option("--tau", predict.tau, "confidence level (default: the spec's)")
      ->check(OpenUnitInterval());

  EvalArgs eval;
  auto* eval_cmd = app.add_subcommand("eval", "Exact vs approximate on the test requests, same run");
  eval_cmd->add_option("--pipeline,-p", eval.spec_path, "pipeline spec (YAML)")->required();
  eval_cmd->add_option("--n", eval.n, "number of test requests (default: the spec's test.n)")
      ->check(CLI::Range(1, 10'000'000));
  eval_cmd->add_flag("--json", eval.json, "print one JSON object");
  eval_cmd->add_option("--delta", eval.delta, "error bound (default: the spec's)")
      ->check(FiniteNonNegative());
  eval_cmd->add_option("--tau", eval.tau, "confidence level (default: the spec's)")
      ->check(OpenUnitInterval());
  eval_cmd->add_option("--out", eval.out_path, "also write the JSON report to this file");
  eval_cmd->add_option("--requests-out", eval.requests_out,
                       "write one CSV line per test request (latency both ways, rounds, sample "
                       "ratio, confidence, cut-over, met)");
  eval_cmd->add_option("--threads", eval.threads, "threads for training a missing model")
      ->check(CLI::Range(1, 256));
  eval_cmd->add_flag("--interleave", eval.interleave,
                     "answer each request exactly and approximately back to back, alternating "
                     "which goes first (same-moment ratios for sub-0.1 ms pipelines)");
  eval_cmd->add_flag("--approx-first", eval.approx_first,
                     "measure the approximate pass before the exact one (order check)");

  DemoArgs demo;
  auto* demo_cmd = app.add_subcommand("demo", "Train (if needed) and evaluate the flight pipelines");
  demo_cmd->add_option("--pipelines", demo.spec_paths, "pipeline specs");
  demo_cmd->add_option("--n", demo.n, "test requests per pipeline")->check(CLI::Range(1, 10'000'000));
  demo_cmd->add_option("--threads", demo.threads, "threads for training")->check(CLI::Range(1, 256));

  SuiteArgs suite;
  auto* suite_cmd =
      app.add_subcommand("suite", "Evaluate several pipelines (exact and approximate, same run)");
  suite_cmd->add_option("--pipelines", suite.spec_paths, "pipeline specs");
  suite_cmd->add_option("--n", suite.n, "test requests per pipeline (default: each spec's test.n)")
      ->check(CLI::Range(1, 10'000'000));
  suite_cmd->add_option("--threads", suite.threads, "threads for training missing models")
      ->check(CLI::Range(1, 256));
  suite_cmd->add_option("--results", suite.results_dir, "folder for the JSON reports");
  suite_cmd->add_option("--markdown", suite.markdown, "Markdown file whose suite section gets the table");
  suite_cmd->add_flag("--check-meet", suite.check_meet,
                      "exit 1 when a pipeline's meet rate is below its tau");
  suite_cmd->add_option("--plots", suite.plots, "folder for the SVG charts (speedup.svg, meet-rate.svg)");

  ImbalanceArgs imbalance;
  auto* imbalance_cmd = app.add_subcommand("imbalance", "Median imbalance experiment (two-point data)");
  imbalance_cmd->add_option("--pipeline,-p", imbalance.spec_path, "the imbalance spec")
      ->default_val(imbalance.spec_path);
  imbalance_cmd->add_option("--markdown", imbalance.markdown,
                            "write the table here and docs/plots/imbalance.svg");

  SweepArgs sweep;
  auto* sweep_cmd =
      app.add_subcommand("sweep", "Vary tau, delta, alpha and gamma one at a time (same-run ratios)");
  sweep_cmd->add_option("--pipeline,-p", sweep.spec_path, "pipeline spec (YAML)")->required();
  sweep_cmd->add_option("--n", sweep.n, "test requests per setting")->check(CLI::Range(1, 10'000'000));
  sweep_cmd->add_option("--threads", sweep.threads, "threads for training a missing model")
      ->check(CLI::Range(1, 256));
  sweep_cmd->add_option("--markdown", sweep.markdown, "also write the table to this Markdown file");
  sweep_cmd->add_option("--plots", sweep.plots, "folder for sweep-<pipeline>.svg");

  PlotArgs plot;
  auto* plot_cmd = app.add_subcommand("plot", "Draw the suite's SVG charts from saved JSON reports");
  plot_cmd->add_option("reports", plot.reports, "JSON reports (results/*.json)")->required();
  plot_cmd->add_option("--out", plot.out_dir, "folder for speedup.svg and meet-rate.svg");

  ServeArgs serve;
  auto* serve_cmd = app.add_subcommand("serve", "Serve pipelines over HTTP/JSON (docs/api.md)");
  serve_cmd->add_option("--pipelines,-p", serve.spec_paths, "pipeline specs")->required();
  serve_cmd->add_option("--host", serve.http.host, "listen address")->default_val("127.0.0.1");
  serve_cmd->add_option("--port", serve.http.port, "listen port (0: any free port)")
      ->default_val(8080)->check(CLI::Range(0, 65535));
  serve_cmd->add_option("--workers", serve.service.workers, "worker threads (0: one per core)")
      ->default_val(0)->check(CLI::Range(0, 1024));
  serve_cmd->add_option("--auth-token-file", serve.auth_token_file,
                        "require 'Authorization: Bearer <token>' (token: this file's first line; "
                        "or set APXSERVE_AUTH_TOKEN); /healthz and /readyz stay open");
  serve_cmd->add_option("--queue", serve.service.queue_capacity, "requests waiting for a worker")
      ->default_val(256)->check(CLI::Range(1, 1'000'000));
  serve_cmd->add_option("--slo-ms", serve.service.slo_ms, "latency objective and default deadline")
      ->default_val(50)->check(CLI::PositiveNumber);
  serve_cmd->add_option("--admit-fraction", serve.service.admit_fraction,
                        "admit a request only if its predicted latency fits this share of its deadline")
      ->default_val(serve.service.admit_fraction)->check(NumberWhere([](double v) { return v > 0 && v <= 1; }, "in (0, 1]"));
  serve_cmd->add_option("--control", serve.control, "load control (accuracy scaling): on or off")
      ->default_val("on")->check(CLI::IsMember({"on", "off"}));
  serve_cmd->add_option("--level", serve.level,
                        "level with --control off: exact, spec, relaxed, relaxed2 or capped")
      ->default_val("spec");
  serve_cmd->add_option("--max-body-bytes", serve.http.max_body_bytes, "larger bodies get 413")
      ->default_val(1 << 20);
  serve_cmd->add_option("--max-batch", serve.http.max_batch, "requests per predict_batch")
      ->default_val(1000);
  serve_cmd->add_option("--max-connections", serve.http.max_connections,
                        "open connections at once (beyond: 503 and close)")
      ->default_val(10000)->check(CLI::Range(1, 1'000'000));
  serve_cmd->add_option("--io-threads", serve.http.io_threads, "event-loop threads")
      ->default_val(1)->check(CLI::Range(1, 64));
  serve_cmd->add_option("--threads", serve.train_threads, "threads for training a missing model")
      ->check(CLI::Range(0, 256));
  serve_cmd->add_option("--request-timeout-s", serve.request_timeout_s,
                        "a request must arrive whole within this many seconds of its first byte")
      ->default_val(5)->check(CLI::Range(0.01, 3600.0));
  serve_cmd->add_option("--idle-timeout-s", serve.idle_timeout_s,
                        "keep-alive connections idle this long are closed")
      ->default_val(10)->check(CLI::Range(0.01, 3600.0));

  LoadgenArgs loadgen;
  auto* loadgen_cmd = app.add_subcommand("loadgen", "Open-loop Poisson load against a running server");
  loadgen_cmd->add_option("--pipeline,-p", loadgen.spec_path,
                          "pipeline spec (its test requests are the load)")
      ->required();
  loadgen_cmd->add_option("--host", loadgen.host, "server address")->default_val("127.0.0.1");
  loadgen_cmd->add_option("--port", loadgen.port, "server port")->default_val(8080);
  loadgen_cmd->add_option("--schedule", loadgen.schedule,
                          "RATE@DURATION[,...]; RATE: R or R1-R2 (ramp), req/s or x = exact-level "
                          "capacity, e.g. 0.5x@10s,0.5x-3x@30s")
      ->required();
  loadgen_cmd->add_option("--connections", loadgen.connections, "client connections")
      ->default_val(64)->check(CLI::Range(1, 4096));
  loadgen_cmd->add_option("--requests", loadgen.requests, "distinct test requests")
      ->default_val(500)->check(CLI::Range(1, 1'000'000));
  loadgen_cmd->add_option("--seed", loadgen.seed, "arrival process seed")->default_val(1);
  loadgen_cmd->add_option("--warmup-s", loadgen.warmup_s,
                          "seconds left out of the totals (steady-state figures)")
      ->default_val(0)->check(CLI::Range(0, 3600));
  loadgen_cmd->add_option("--out", loadgen.out_json, "write the JSON report here");
  loadgen_cmd->add_option("--svg", loadgen.out_svg, "write the SVG timeline here");

  FaultProxyArgs fault_proxy;
  auto* fault_proxy_cmd = app.add_subcommand(
      "fault-proxy", "Seeded TCP fault injector before a server: slow, down, hung or cut answers");
  fault_proxy_cmd->add_option("--listen", fault_proxy.listen,
                              "host:port to listen on (port 0: any free port)")
      ->required();
  fault_proxy_cmd->add_option("--upstream", fault_proxy.upstream, "host:port of the server")
      ->required();
  fault_proxy_cmd->add_option("--mode", fault_proxy.mode,
                              "pass, down (close at once) or hang (read, never answer)")
      ->default_val("pass");
  fault_proxy_cmd->add_option("--slow-fraction", fault_proxy.slow_fraction,
                              "share of exchanges slowed, in [0, 1]")
      ->default_val(0);
  fault_proxy_cmd->add_option("--slow-factor", fault_proxy.slow_factor,
                              "a slowed answer starts at this multiple of its time to first byte")
      ->default_val(10);
  fault_proxy_cmd->add_option("--delay-ms", fault_proxy.delay_ms,
                              "every answer's first byte held this much longer")
      ->default_val(0);
  fault_proxy_cmd->add_option("--cut-fraction", fault_proxy.cut_fraction,
                              "share of answers cut mid-way (then both sides closed), in [0, 1]")
      ->default_val(0);
  fault_proxy_cmd->add_option("--seed", fault_proxy.seed, "which exchanges are slowed and cut")
      ->default_val(1);

  ProfileArgs profile;
  auto* profile_cmd = app.add_subcommand(
      "profile", "Where a distributed pipeline's time goes, and what-if at k shards and a bandwidth");
  profile_cmd->add_option("--pipeline,-p", profile.spec_path, "pipeline spec (YAML; ClickHouse read shard by shard)");
  profile_cmd->add_option("--n", profile.n, "test requests to profile")->check(CLI::Range(1, 1'000'000))->default_val(200);
  profile_cmd->add_option("--out", profile.out_path, "write the profile (JSON) here");
  profile_cmd->add_option("--from", profile.from,
                          "profiles written before: fit on the first, compare with the others' measurements");
  profile_cmd->add_option("--shards", profile.shards, "predict at these shard counts (default 1 2 4 8)")
      ->check(CLI::Range(1, 1024));
  profile_cmd->add_option("--bandwidth-mbps", profile.bandwidth_mbps, "and at these bandwidths (Mbit/s)")
      ->check(CLI::PositiveNumber);
  profile_cmd->add_option("--host-cores", profile.host_cores, "cores per host (default: the profiled machine's)")
      ->check(CLI::Range(1, 4096));
  profile_cmd->add_flag("--host-per-shard", profile.host_per_shard,
                        "predict each shard on its own host (default: all on one, as profiled locally)");
  profile_cmd->add_flag("--sampled-only", profile.sampled_only,
                        "with --from: leave exact statements out (their time off their requests)");
  profile_cmd->add_option("--svg", profile.svg_path, "write predicted vs measured latency (SVG)");
  profile_cmd->add_flag("--json", profile.json, "print one JSON object");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*ingest_cmd) return Finish(RunIngest(ingest, global));
  if (*train_cmd) return Finish(RunTrain(train, global));
  if (*predict_cmd) return Finish(RunPredict(predict, global));
  if (*eval_cmd) return Finish(RunEval(eval, global));
  if (*demo_cmd) return Finish(RunDemo(demo, global));
  if (*suite_cmd) {
    apx::Result<int> code = RunSuite(suite, global);
    return code.ok() ? *code : Fail(code.status());
  }
  if (*imbalance_cmd) return Finish(RunImbalance(imbalance, global));
  if (*sweep_cmd) return Finish(RunSweep(sweep, global));
  if (*plot_cmd) return Finish(RunPlot(plot, global));
  if (*serve_cmd) return Finish(RunServe(serve, global));
  if (*loadgen_cmd) return Finish(RunLoadgenCommand(loadgen, global));
  if (*fault_proxy_cmd) return Finish(RunFaultProxy(fault_proxy));
  if (*profile_cmd) return Finish(RunProfileCommand(profile, global));
  return 2;
}
