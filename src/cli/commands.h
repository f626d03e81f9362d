// cli/commands.h
//
// The `apxserve` subcommands, one file each (<command>_cmd.cc; suite_cmd.cc also holds
// `plot`, which draws the suite's charts). main.cc parses the arguments into a command's
// Args and GlobalOptions and calls its Run function; an error Status becomes the exit code
// (cli_common.h ExitCode). Every Run function checks all its flags before it loads a spec or
// data.
#ifndef APX_CLI_COMMANDS_H_
#define APX_CLI_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "serve/http_server.h"
#include "serve/service.h"

namespace apx::cli {

// Options of the app itself (given before or after the subcommand), applied to every spec a
// command loads (cli_common.h LoadCliSpec).
struct GlobalOptions {
  double scale = 1.0;        // --scale: data scale of generated tables
  bool no_cut_over = false;  // --no-cut-over: always take the approximate path
};

struct IngestArgs {
  std::string spec_path;
};

// `apxserve ingest`: reads the spec's CSV tables into binary snapshots (generated tables are
// generated instead).
Status RunIngest(const IngestArgs& args, const GlobalOptions& global);

struct TrainArgs {
  std::string spec_path;
  int threads = 2;
  bool json = false;  // a JSON report on stdout (and no progress bars)
};

// `apxserve train`: trains the spec's model on exact features and writes it.
Status RunTrain(const TrainArgs& args, const GlobalOptions& global);

struct PredictArgs {
  std::string spec_path;
  std::string request;  // JSON text, @file, or - for stdin
  bool exact = false;
  double delta = -1;  // < 0: the spec's
  double tau = -1;    // < 0: the spec's
};

// `apxserve predict`: answers one request; the prediction as JSON on stdout.
Status RunPredict(const PredictArgs& args, const GlobalOptions& global);

struct EvalArgs {
  std::string spec_path;
  int n = -1;  // test requests; -1: the spec's test.n
  bool json = false;
  double delta = -1;  // < 0: the spec's
  double tau = -1;    // < 0: the spec's
  std::string out_path;  // optional: the JSON report also goes here
  int threads = 2;       // for training a missing model
  bool approx_first = false;  // measure the approximate pass before the exact one
  bool interleave = false;    // answer each request both ways back to back (eval.h)
  std::string requests_out;   // optional: per-request CSV (EvalReport::PerRequestCsv)
};

// `apxserve eval`: exact vs approximate on the spec's test requests, in the same run.
Status RunEval(const EvalArgs& args, const GlobalOptions& global);

struct DemoArgs {
  std::vector<std::string> spec_paths = {"pipelines/flight-delay.yaml", "pipelines/flight-late.yaml"};
  int n = 300;  // test requests per pipeline
  int threads = 2;
};

// `apxserve demo`: evaluates the flight pipelines, then shows one request answered both ways.
Status RunDemo(const DemoArgs& args, const GlobalOptions& global);

struct SuiteArgs {
  std::vector<std::string> spec_paths = {"pipelines/flight-delay.yaml", "pipelines/flight-late.yaml",
                                         "pipelines/bearing.yaml", "pipelines/bearing-median.yaml"};
  int n = -1;  // test requests per pipeline; -1: each spec's test.n
  int threads = 2;
  std::string results_dir = "results";  // <pipeline>-scale<scale>.json per pipeline
  std::string markdown;                 // optional: file whose suite section gets the table
  bool check_meet = false;              // exit 1 when a meet rate is below its tau
  std::string plots;                    // optional: folder for the SVG charts
};

// `apxserve suite`: evaluates several pipelines, one table. Returns the exit code: 0, or 1
// with --check-meet when a pipeline's meet rate is below its tau (each such pipeline is named
// on stderr, with or without --check-meet).
Result<int> RunSuite(const SuiteArgs& args, const GlobalOptions& global);

struct PlotArgs {
  std::vector<std::string> reports;  // JSON reports of eval/suite
  std::string out_dir = "docs/plots";
};

// `apxserve plot`: the suite's charts from saved JSON reports (the titles name --scale).
Status RunPlot(const PlotArgs& args, const GlobalOptions& global);

struct SweepArgs {
  std::string spec_path;
  int n = 300;  // test requests per setting
  int threads = 2;
  std::string markdown;  // optional: the table also goes here
  std::string plots;     // optional: folder for sweep-<pipeline>.svg and tradeoff-<pipeline>.svg
};

// `apxserve sweep`: tau, delta (regression), alpha and gamma one at a time around the spec's
// values, each setting measured exact vs approximate in the same run.
Status RunSweep(const SweepArgs& args, const GlobalOptions& global);

struct ImbalanceArgs {
  std::string spec_path = "pipelines/imbalance.yaml";
  int threads = 2;       // for training a missing model (no flag)
  std::string markdown;  // optional: the table goes here, the chart to docs/plots/imbalance.svg
};

// `apxserve imbalance`: the median imbalance experiment, one row per imbalance ratio.
Status RunImbalance(const ImbalanceArgs& args, const GlobalOptions& global);

struct ServeArgs {
  std::vector<std::string> spec_paths;
  std::string auth_token_file;  // "" and no APXSERVE_AUTH_TOKEN: no authentication
  std::string control = "on";   // --control on|off: sets service.load_control
  std::string level = "spec";   // --level (with --control off): sets service.fixed_level
  double request_timeout_s = 5;  // sets http.request_timeout
  double idle_timeout_s = 10;    // sets http.idle_timeout
  serve::ServiceOptions service;
  serve::HttpOptions http;
  int train_threads = 0;
};

// `apxserve serve`: prepares every spec (data, model), starts the service and serves HTTP
// until SIGINT or SIGTERM. Progress and the listening address go to stderr.
Status RunServe(const ServeArgs& args, const GlobalOptions& global);

struct LoadgenArgs {
  std::string spec_path;     // its test requests are the load
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string schedule;      // serve/loadgen.h ParseSchedule; x = exact-level capacity
  int connections = 64;
  int requests = 500;        // distinct test requests, sent round-robin
  uint64_t seed = 1;
  int warmup_s = 0;          // seconds left out of the totals (still in the per-second rows)
  std::string out_json;      // optional report file
  std::string out_svg;       // optional timeline chart
};

// `apxserve loadgen`: open-loop Poisson load against a running server for the pipeline of
// args.spec_path (its test requests are the load; their exact answers are fetched first),
// per-second report on stdout, JSON and SVG timeline on request.
Status RunLoadgenCommand(const LoadgenArgs& args, const GlobalOptions& global);

struct FaultProxyArgs {
  std::string listen;    // host:port (port 0: any free port, printed when listening)
  std::string upstream;  // host:port
  // fault/fault_proxy.h FaultSpec, as given (checked by fault::Validate and ParseMode).
  std::string mode = "pass";
  double slow_fraction = 0;
  double slow_factor = 10;
  int64_t delay_ms = 0;
  double cut_fraction = 0;
  uint64_t seed = 1;
};

// `apxserve fault-proxy`: a seeded TCP fault injector in front of one server (a ClickHouse
// shard) until SIGINT or SIGTERM; the listening line on stderr, the counters as one JSON line
// on stdout at exit.
Status RunFaultProxy(const FaultProxyArgs& args);

struct ProfileArgs {
  std::string spec_path;             // run the pipeline's requests (unless `from` is given)
  int n = 200;                       // test requests
  std::string out_path;              // write the profile (JSON) here
  std::vector<std::string> from;     // profiles written before: fit on the first, compare
                                     // the predictions with the others' measurements
  std::vector<int> shards;           // predict at these shard counts (default 1, 2, 4, 8)
  std::vector<double> bandwidth_mbps;  // and at these bandwidths (default: as measured)
  int host_cores = 0;                // cores per host (0: the profiled machine's)
  bool host_per_shard = false;       // each shard on its own host (else all on one, as a
                                     // local profile ran)
  std::string svg_path;              // predicted vs measured latency (SVG)
  bool sampled_only = false;         // --from: leave the exact statements out
  bool json = false;
};

// `apxserve profile`: where a distributed pipeline's time goes, and a what-if model of it at
// other shard counts and bandwidths (eval/profile.h, docs/profile.md).
Status RunProfileCommand(const ProfileArgs& args, const GlobalOptions& global);

}  // namespace apx::cli

#endif  // APX_CLI_COMMANDS_H_
