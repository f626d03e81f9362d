// The HTTP API against a real `apxserve serve` process on a loopback port: answers, the
// listing, metrics, and every kind of bad input (docs/api.md).
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

namespace apx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kGood[] =
    R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": 606})";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts `apxserve serve` on the fixture pipeline (paths redirected to a temp dir) with
// --port 0 and learns the port from its log. Stopped with SIGTERM by the destructor.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> extra_args = {}, std::string auth_token = "") {
    dir_ = fs::temp_directory_path() / ("apx_http_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::string spec = ReadAll("tests/pipelines/flight-small.yaml");
    const std::string csv = fs::absolute("data/fixtures/flights-small.csv").string();
    spec = std::regex_replace(spec, std::regex(R"(csv: \S+)"),
                              "csv: " + csv + "\n    snapshot: " + (dir_ / "flights.apxsnap").string());
    spec = std::regex_replace(spec, std::regex(R"(path: \S+json)"), "path: " + (dir_ / "model.json").string());
    std::ofstream(dir_ / "spec.yaml") << spec;
    // A log of its own, created before the fork: never the previous server's port.
    static int instance = 0;
    log_ = dir_ / ("server-" + std::to_string(++instance) + ".log");
    std::ofstream(log_, std::ios::trunc).flush();
    const std::string spec_path = (dir_ / "spec.yaml").string();
    std::vector<std::string> args = {APXSERVE_BINARY, "serve", "-p", spec_path, "--port", "0",
                                     "--max-body-bytes", "400000", "--max-batch", "5",
                                     "--request-timeout-s", "1", "--idle-timeout-s", "3",
                                     "--workers", "2", "--max-connections", "300"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    pid_ = fork();
    if (pid_ == 0) {
      // If the test process dies (a crash, a sanitizer abort), the server goes with it.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 2);
      dup2(fd, 1);
      if (!auth_token.empty()) setenv("APXSERVE_AUTH_TOKEN", auth_token.c_str(), 1);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(APXSERVE_BINARY, argv.data());
      _exit(127);
    }
    // Wait (up to 60 s: it trains the fixture model first) for the listening line.
    const std::regex listening(R"(on http://127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::smatch m;
      const std::string text = ReadAll(log_);
      if (std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~ServerProcess() { Stop(); }

  // SIGTERM; returns the exit status (-1 if not running).
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  int port() const { return port_; }
  std::string log() const { return ReadAll(log_); }
  const fs::path& dir() const { return dir_; }
  // SIGKILL: no shutdown code runs.
  void Kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  fs::path dir_, log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Sends raw bytes (no client library to normalise them) and returns what the server sent back
// until it closed the connection or `timeout_s` passed.
int Connect(int port);

std::string RawExchange(int port, const std::string& bytes, double timeout_s = 5) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + sent, bytes.size() - sent);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  timeval tv{.tv_sec = static_cast<time_t>(timeout_s), .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// The status codes of every HTTP response in `raw`, in order.
std::vector<int> StatusCodes(const std::string& raw) {
  std::vector<int> codes;
  const std::regex status_line(R"(HTTP/1\.1 (\d{3}) )");
  for (std::sregex_iterator it(raw.begin(), raw.end(), status_line), end; it != end; ++it) {
    codes.push_back(std::stoi((*it)[1]));
  }
  return codes;
}

class HttpApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServerProcess(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_GT(server_->port(), 0) << server_->log();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10);
  }
  httplib::Result Post(const std::string& path, const std::string& body) {
    return client_->Post(path.c_str(), body, "application/json");
  }
  // Checks a JSON error answer: status, and a message containing `text`.
  static void ExpectError(const httplib::Result& r, int status, const std::string& text) {
    ASSERT_TRUE(r) << "no response";
    EXPECT_EQ(r->status, status) << r->body;
    json j;
    ASSERT_NO_THROW(j = json::parse(r->body)) << r->body;
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_EQ(j["error"]["status"], status);
    EXPECT_NE(j["error"]["message"].get<std::string>().find(text), std::string::npos) << r->body;
  }

  static ServerProcess* server_;
  std::unique_ptr<httplib::Client> client_;
};

ServerProcess* HttpApiTest::server_ = nullptr;

TEST_F(HttpApiTest, HealthReadyAndListing) {
  auto h = client_->Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto r = client_->Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto l = client_->Get("/v1/pipelines");
  ASSERT_TRUE(l);
  ASSERT_EQ(l->status, 200);
  const json j = json::parse(l->body);
  ASSERT_EQ(j["pipelines"].size(), 1u);
  EXPECT_EQ(j["pipelines"][0]["name"], "flight-small");
  EXPECT_EQ(j["pipelines"][0]["delta"], 2.0);
  EXPECT_EQ(j["pipelines"][0]["request_fields"]["origin"], "string");
  EXPECT_FALSE(j["pipelines"][0]["features"].empty());
}

TEST_F(HttpApiTest, PredictAnswersWithItsGuarantee) {
  auto r = Post("/v1/pipelines/flight-small/predict", kGood);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_TRUE(j["prediction"].is_number());
  EXPECT_EQ(j["delta"], 2.0);
  EXPECT_TRUE(j["confidence"].is_number());
  EXPECT_TRUE(j["degraded"].is_boolean());
  EXPECT_TRUE(j.contains("level"));
  EXPECT_TRUE(j["sample_ratios"].is_object());
  EXPECT_TRUE(j["latency_ms"].contains("queue"));
  if (!j["degraded"].get<bool>()) {
    EXPECT_GE(j["confidence"].get<double>(), j["tau"].get<double>());
  }

  // Own delta/tau, and the exact answer on request.
  json body = json::parse(kGood);
  body["delta"] = 5.0;
  body["tau"] = 0.9;
  auto own = Post("/v1/pipelines/flight-small/predict", body.dump());
  ASSERT_EQ(own->status, 200) << own->body;
  body.erase("delta");
  body.erase("tau");
  body["exact"] = true;
  auto exact = Post("/v1/pipelines/flight-small/predict", body.dump());
  ASSERT_EQ(exact->status, 200) << exact->body;
  EXPECT_EQ(json::parse(exact->body)["exact"], true);
  EXPECT_EQ(json::parse(exact->body)["level"], "exact");
}

TEST_F(HttpApiTest, BatchAnswersEveryRequest) {
  const std::string body = std::string(R"({"requests": [)") + kGood + "," + kGood + "," + kGood + "]}";
  auto r = Post("/v1/pipelines/flight-small/predict_batch", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["results"].size(), 3u);
  std::string big = R"({"requests": [)";
  for (int i = 0; i < 6; ++i) big += std::string(i ? "," : "") + kGood;
  ExpectError(Post("/v1/pipelines/flight-small/predict_batch", big + "]}"), 413, "exceeds the limit of 5");
  ExpectError(Post("/v1/pipelines/flight-small/predict_batch", "[1, 2]"), 400, "body must be");
  ExpectError(Post("/v1/pipelines/flight-small/predict_batch",
                   std::string(R"({"requests": [)") + kGood + R"(, {"origin": "ORD"}]})"),
              400, "requests[1]");
}

TEST_F(HttpApiTest, BadInputGetsTheRightStatusAndNamesTheProblem) {
  const std::string path = "/v1/pipelines/flight-small/predict";
  ExpectError(Post(path, "{not json"), 400, "not valid JSON");
  ExpectError(Post(path, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": NaN})"),
              400, "not valid JSON");
  ExpectError(Post(path, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": 1e999})"),
              400, "not valid JSON");
  ExpectError(Post(path, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": "far"})"),
              400, "'distance' must be a number");
  ExpectError(Post(path, R"({"dep_time": "2001-02-10 08:30", "dest": "ATL", "distance": 606})"), 400,
              "missing request field 'origin'");
  ExpectError(Post(path, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": 606, "seat": 3})"),
              400, "unknown request field 'seat'");
  ExpectError(Post(path, R"({"dep_time": "yesterday", "origin": "ORD", "dest": "ATL", "distance": 606})"), 400,
              "dep_time");
  ExpectError(Post(path, "[1, 2, 3]"), 400, "must be a JSON object");
  json bad_tau = json::parse(kGood);
  bad_tau["tau"] = 1.5;
  ExpectError(Post(path, bad_tau.dump()), 400, "'tau' must be in (0, 1)");
  json bad_deadline = json::parse(kGood);
  bad_deadline["deadline_ms"] = "soon";
  ExpectError(Post(path, bad_deadline.dump()), 400, "'deadline_ms' must be a number");
  ExpectError(Post("/v1/pipelines/nope/predict", kGood), 404, "unknown pipeline 'nope'");
  ExpectError(Post(path, std::string(500'000, ' ') + kGood), 413, "exceeds 400000 bytes");
  ExpectError(client_->Get(path.c_str()), 405, "GET is not allowed");
  ExpectError(client_->Get("/v2/whatever"), 404, "no route");
}

// Each of these once killed the server or gave 500 (issue 9): invalid UTF-8 in the path went
// into a JSON error body whose dump() threw outside any handler; 80,000 nested brackets
// overflowed the stack in an error message.
TEST_F(HttpApiTest, HostileInputIsAClientErrorAndTheServerStaysUp) {
  const std::string path = "/v1/pipelines/flight-small/predict";
  ExpectError(client_->Get("/%ff"), 404, "no route for GET /");
  ExpectError(Post("/v1/pipelines/%ff%fe/predict", kGood), 404, "unknown pipeline");
  const std::string raw = RawExchange(server_->port(), "GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_FALSE(StatusCodes(raw).empty()) << raw;
  EXPECT_GE(StatusCodes(raw)[0], 400);
  EXPECT_LT(StatusCodes(raw)[0], 500);
  ExpectError(Post(path, "{\"dep_time\": \"2001-02-10 08:30\", \"origin\": \"\xff\", \"dest\": \"ATL\", \"distance\": 606}"),
              400, "not valid JSON");
  const std::string deep = R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": )" +
                           std::string(80'000, '[') + std::string(80'000, ']') + "}";
  ExpectError(Post(path, deep), 400, "nested deeper than 64");
  ExpectError(Post(path, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "dest": "ATL", "distance": [[[1]]]})"),
              400, "'distance' must be a number, got an array of 1 elements");
  ExpectError(Post(path, R"({"dep_time": "2001-02-10 08:30", "origin": "ORD", "origin": "ATL", "dest": "ATL", "distance": 606})"),
              400, "duplicate key 'origin'");
  auto h = client_->Get("/healthz");
  ASSERT_TRUE(h) << server_->log();
  EXPECT_EQ(h->status, 200);
}

TEST_F(HttpApiTest, SlowClientIsDisconnectedAndServerStaysUp) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string partial = "POST /v1/pipelines/flight-small/predict HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(write(fd, partial.data(), partial.size()), static_cast<ssize_t>(partial.size()));
  // The server's read timeout is 1 s: it must close the connection (read returns 0 or an error).
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // It answers 408 first (the client learns why), then closes.
  std::string answer;
  char buf[4096];
  const auto start = std::chrono::steady_clock::now();
  ssize_t n = 0;
  while ((n = read(fd, buf, sizeof(buf))) > 0) answer.append(buf, static_cast<size_t>(n));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(fd);
  EXPECT_LT(waited, 4.5) << "connection was not closed (read returned " << n << ")";
  EXPECT_EQ(StatusCodes(answer), std::vector<int>{408}) << answer;
  EXPECT_NE(answer.find("did not arrive whole within 1000 ms"), std::string::npos) << answer;
  auto h = client_->Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// A connected socket to the server (-1 on failure).
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Slowloris: a client that keeps sending one byte at a time never finishes its request. The
// old front's timeout was per read, so such a client held a connection thread forever; the
// deadline now covers the whole request.
TEST_F(HttpApiTest, TricklingClientIsCutOffAtTheRequestDeadline) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  const std::string request = "POST /v1/pipelines/flight-small/predict HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                              std::string(200, 'a');
  const auto start = std::chrono::steady_clock::now();
  auto since_start = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  double cut_after = -1, answered_after = -1;
  std::string answer;
  char buf[4096];
  for (size_t i = 0; i < request.size(); ++i) {
    if (send(fd, request.data() + i, 1, MSG_NOSIGNAL) != 1) {
      cut_after = since_start();
      break;
    }
    const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      if (answered_after < 0) answered_after = since_start();
      answer.append(buf, static_cast<size_t>(n));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  close(fd);
  // The request deadline is 1 s: the server answers 408 at ~1 s, then stops reading after a
  // short linger (2 s, so that the client can read the answer); a write fails once the close
  // has come back.
  ASSERT_GT(answered_after, 0) << "no answer to a client that kept trickling for " << request.size() * 0.05 << " s";
  EXPECT_LT(answered_after, 2.0);
  EXPECT_EQ(StatusCodes(answer), std::vector<int>{408}) << answer;
  ASSERT_GT(cut_after, 0) << "the server never closed a client that kept trickling for "
                          << request.size() * 0.05 << " s";
  EXPECT_LT(cut_after, 4.5);
}

// Idle connections cost no thread: with 250 connected clients that send nothing, /healthz
// and predictions are answered at once. Beyond --max-connections (300), new connections get
// 503 with Retry-After and are closed, except health probes, which are still answered (a
// full server is up, not dead).
TEST_F(HttpApiTest, IdleConnectionsDoNotStarveAndTheLimitIsExplicit) {
  std::vector<int> idle;
  for (int i = 0; i < 250; ++i) {
    const int fd = Connect(server_->port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  auto h = client_->Get("/healthz");
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_LT(ms, 500);
  auto p = Post("/v1/pipelines/flight-small/predict", kGood);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 200) << p->body;
  for (int i = 0; i < 60; ++i) {
    const int fd = Connect(server_->port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string probe = RawExchange(server_->port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 2);
  EXPECT_EQ(StatusCodes(probe), std::vector<int>{200}) << probe;
  EXPECT_NE(probe.find("Connection: close"), std::string::npos) << probe;
  const std::string body = kGood;
  const std::string over = RawExchange(server_->port(),
                                       "POST /v1/pipelines/flight-small/predict HTTP/1.1\r\nHost: x\r\n"
                                       "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body, 2);
  EXPECT_NE(over.find("HTTP/1.1 503"), std::string::npos) << over;
  EXPECT_NE(over.find("Retry-After: 1"), std::string::npos) << over;
  EXPECT_NE(over.find("too many open connections (limit 300)"), std::string::npos) << over;
  for (int fd : idle) close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  auto after = client_->Get("/healthz");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

// HTTP/1.1 pipelining: three requests in one write get three answers, in order (the old
// front answered the first and dropped the rest).
TEST_F(HttpApiTest, PipelinedRequestsAreAllAnsweredInOrder) {
  const std::string body = kGood;
  const std::string pipelined =
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /v1/pipelines/flight-small/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body +
      "GET /v2/none HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string raw = RawExchange(server_->port(), pipelined, 5);
  EXPECT_EQ(StatusCodes(raw), (std::vector<int>{200, 200, 404, 200})) << raw;
  const size_t ok = raw.find(R"({"status":"ok"})"), prediction = raw.find("\"prediction\""),
               none = raw.find("no route for GET /v2/none"), ready = raw.find(R"({"status":"ready"})");
  ASSERT_NE(ok, std::string::npos);
  ASSERT_NE(prediction, std::string::npos);
  ASSERT_NE(none, std::string::npos);
  ASSERT_NE(ready, std::string::npos);
  EXPECT_LT(ok, prediction);
  EXPECT_LT(prediction, none);
  EXPECT_LT(none, ready);
}

// Framing that another hop could read differently (request smuggling): the body of a
// request with "Transfer-Encoding: gzip" was read as empty and its bytes served as a second
// request. Now: one 400 and the connection closes.
TEST_F(HttpApiTest, AmbiguousFramingIsRefusedNotSmuggled) {
  const std::string smuggle =
      "POST /v1/pipelines/flight-small/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
      "GET /v1/pipelines HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string raw = RawExchange(server_->port(), smuggle, 3);
  EXPECT_EQ(StatusCodes(raw), std::vector<int>{400}) << raw;
  EXPECT_EQ(raw.find("\"pipelines\""), std::string::npos) << raw;
  raw = RawExchange(server_->port(), "GET /healthz HTTP/1.1\r\n\r\n", 3);  // no Host
  EXPECT_EQ(StatusCodes(raw), std::vector<int>{400}) << raw;
  // A chunk extension without end (150 MB once grew the server by 260 MB): refused early.
  const std::string chunked =
      "POST /v1/pipelines/flight-small/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n51;" +
      std::string(3'000'000, 'a');
  raw = RawExchange(server_->port(), chunked, 3);
  ASSERT_FALSE(StatusCodes(raw).empty()) << raw.substr(0, 200);
  EXPECT_GE(StatusCodes(raw)[0], 400);
  // Absolute-form targets are accepted.
  raw = RawExchange(server_->port(), "GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3);
  EXPECT_EQ(StatusCodes(raw), std::vector<int>{200}) << raw;
}

// Values that passed validation and broke later: epoch seconds far outside any calendar (UB
// casts, window overflow), delta 0 on a regression pipeline (counted as an internal error).
TEST_F(HttpApiTest, OutOfRangeValuesAreClientErrors) {
  const std::string path = "/v1/pipelines/flight-small/predict";
  ExpectError(Post(path, R"({"dep_time": -9223372036854775808, "origin": "ORD", "dest": "ATL", "distance": 606})"),
              400, "outside years 0000-9999");
  ExpectError(Post(path, R"({"dep_time": 18446744073709551615, "origin": "ORD", "dest": "ATL", "distance": 606})"),
              400, "outside years 0000-9999");
  ExpectError(Post(path, R"({"dep_time": "2001-02-30 08:30", "origin": "ORD", "dest": "ATL", "distance": 606})"),
              400, "bad timestamp");
  json zero = json::parse(kGood);
  zero["delta"] = 0;
  ExpectError(Post(path, zero.dump()), 400, "'delta' must be > 0 for a regression pipeline");
  ExpectError(Post("/v1/pipelines/flight-small/predict_batch", std::string(R"({"requests": [)") + kGood + R"(], "x": 1})"),
              400, "no other keys");
}

// A batch runs one item at a time, so it never competes with itself for the queue or the
// exact share (a batch of 3 exact items once rejected 2 of its own).
TEST_F(HttpApiTest, BatchItemsDoNotCrowdEachOtherOut) {
  json item = json::parse(kGood);
  item["exact"] = true;
  json body = {{"requests", json::array({item, item, item, item, item})}};
  auto r = Post("/v1/pipelines/flight-small/predict_batch", body.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json answer = json::parse(r->body);
  for (const json& result : answer["results"]) {
    EXPECT_FALSE(result.contains("error")) << result.dump();
    EXPECT_EQ(result["exact"], true);
  }
}

// Load refusals say when to come back.
TEST_F(HttpApiTest, SheddingAnswers503WithRetryAfter) {
  json body = json::parse(kGood);
  body["deadline_ms"] = 0.001;  // no level can finish in 1 µs: shed at admission
  auto r = Post("/v1/pipelines/flight-small/predict", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_NE(r->body.find("overloaded: predicted latency"), std::string::npos) << r->body;
}

TEST_F(HttpApiTest, MetricsCountOutcomes) {
  ASSERT_EQ(Post("/v1/pipelines/flight-small/predict", kGood)->status, 200);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  for (const char* name : {"apxserve_requests_total", "apxserve_request_latency_seconds_bucket",
                           "apxserve_rounds", "apxserve_sample_ratio", "apxserve_confidence",
                           "apxserve_queue_length", "apxserve_level", "apxserve_desired_replicas"}) {
    EXPECT_NE(m->body.find(name), std::string::npos) << name;
  }
  const std::regex ok_count(R"re(apxserve_requests_total\{[^}]*outcome="(ok|degraded)"[^}]*\} (\d+))re");
  double answered = 0;
  for (std::sregex_iterator it(m->body.begin(), m->body.end(), ok_count), end; it != end; ++it) {
    answered += std::stod((*it)[2]);
  }
  EXPECT_GE(answered, 1);
}

TEST_F(HttpApiTest, StopsCleanlyOnSigterm) {
  // Last test (gtest runs them in order): the server exits 0 on SIGTERM.
  EXPECT_EQ(server_->Stop(), 0) << server_->log();
}

TEST(HttpAppendTest, AppendedRowsChangeTheNextAnswerAndSurviveKill9) {
  // The embedded store takes appends: 200 very late ORD departures in the last 3 hours change
  // the exact answer for ORD; after kill -9 and a restart the append log brings them back.
  auto server = std::make_unique<ServerProcess>();
  ASSERT_GT(server->port(), 0) << server->log();
  const fs::path log_file = server->dir() / "flights.apxlog";
  fs::remove(log_file);
  httplib::Client client("127.0.0.1", server->port());
  client.set_read_timeout(10);
  json request = json::parse(kGood);
  request["exact"] = true;
  auto predict = [&](httplib::Client& c) {
    auto r = c.Post("/v1/pipelines/flight-small/predict", request.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    return r && r->status == 200 ? json::parse(r->body)["prediction"].get<double>() : NAN;
  };
  const double before = predict(client);
  std::string csv = "dep_time,delay,distance,origin,dest\n";
  for (int i = 0; i < 200; ++i) {
    csv += "2001-02-10 0" + std::to_string(6 + i / 100) + ":" + (i % 60 < 10 ? "0" : "") + std::to_string(i % 60) +
           ",600,606,ORD,ATL\n";
  }
  auto bad = client.Post("/v1/tables/flights/rows", "dep_time,delay\n2001-02-10 07:00,x\n", "text/csv");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  auto posted = client.Post("/v1/tables/flights/rows", csv, "text/csv");
  ASSERT_TRUE(posted);
  ASSERT_EQ(posted->status, 200) << posted->body;
  EXPECT_EQ(json::parse(posted->body)["inserted"], 200);
  EXPECT_EQ(json::parse(posted->body)["backend"], "embedded");
  const double after = predict(client);
  EXPECT_NE(after, before);
  EXPECT_TRUE(fs::exists(log_file));

  server->Kill9();
  server = std::make_unique<ServerProcess>();
  ASSERT_GT(server->port(), 0) << server->log();
  EXPECT_NE(server->log().find("200 appended rows"), std::string::npos) << server->log();
  httplib::Client again("127.0.0.1", server->port());
  again.set_read_timeout(10);
  EXPECT_DOUBLE_EQ(predict(again), after);
  server.reset();
  fs::remove(log_file);  // the other tests' servers share the folder
}

// With a token (here from APXSERVE_AUTH_TOKEN), every route but the health probes needs it.
TEST(HttpAuthTest, BearerTokenIsRequiredExceptForProbes) {
  const std::string token = "s3cret-token-0123456789";
  ServerProcess server({}, token);
  ASSERT_GT(server.port(), 0) << server.log();
  EXPECT_NE(server.log().find("authentication bearer token"), std::string::npos) << server.log();
  httplib::Client client("127.0.0.1", server.port());
  auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto anonymous = client.Post("/v1/pipelines/flight-small/predict", kGood, "application/json");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401) << anonymous->body;
  EXPECT_EQ(anonymous->get_header_value("WWW-Authenticate"), "Bearer");
  auto wrong = client.Get("/metrics", {{"Authorization", "Bearer s3cret-token-0123456780"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto good = client.Post("/v1/pipelines/flight-small/predict", {{"Authorization", "Bearer " + token}}, kGood,
                          "application/json");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200) << good->body;
  EXPECT_EQ(server.Stop(), 0);
}

// Bad listen addresses fail before any data is loaded, with a clear message.
TEST(HttpAuthTest, BadAddressesAndShortTokensFailFast) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--host", "not-an-ip"}, std::vector<std::string>{"--port", "70000"}}) {
    ServerProcess server(args);
    EXPECT_EQ(server.port(), 0);
    EXPECT_TRUE(server.log().find("not an IP address") != std::string::npos ||
                server.log().find("70000") != std::string::npos)
        << server.log();
  }
  ServerProcess short_token({}, "short");
  EXPECT_EQ(short_token.port(), 0);
  EXPECT_NE(short_token.log().find("use at least 16"), std::string::npos) << short_token.log();
}

}  // namespace
}  // namespace apx
