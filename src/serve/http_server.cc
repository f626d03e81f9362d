#include "serve/http_server.h"

#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <functional>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

#include "common/json.h"
#include "serve/api_json.h"

namespace apx::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

using Response = http::response<http::string_body>;
using Request = http::request<http::string_body>;

constexpr size_t kHeaderLimit = 16 * 1024;
// Chunked framing: extensions per chunk and chunks per request (each chunk costs parsing
// however small its payload).
constexpr size_t kMaxChunkExtension = 256;
constexpr size_t kMaxChunks = 4096;
// Bodies larger than this are parsed off the event loop (a 1 MB body takes ~100 ms).
constexpr size_t kInlineParseBytes = 16 * 1024;
// Connections beyond max_connections that are still read, for /healthz and /readyz only
// (an orchestrator's probe must see a full server as up); the rest of them get 503.
constexpr size_t kProbeReserve = 64;
// How long Stop() waits for answers in flight before it closes everything.
constexpr auto kDrainTimeout = std::chrono::seconds(5);

// Response with a JSON (or other) body, keep-alive as the request asked.
Response MakeResponse(unsigned version, bool keep_alive, int status, std::string body,
                      const char* content_type = "application/json") {
  Response res{static_cast<http::status>(status), version};
  res.set(http::field::server, "apxserve");
  res.set(http::field::content_type, content_type);
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response ErrorResponse(unsigned version, bool keep_alive, int status, std::string_view code,
                       std::string_view message) {
  Response res = MakeResponse(version, keep_alive, status, ErrorJson(status, code, message));
  if (status == 503) res.set(http::field::retry_after, "1");
  return res;
}

Response StatusResponse(unsigned version, bool keep_alive, const Status& status) {
  return ErrorResponse(version, keep_alive, HttpStatusOf(status), StatusCodeName(status.code()),
                       status.message());
}

int HttpStatusOfResult(const ServeResult& r) {
  switch (r.outcome) {
    case Outcome::kOk:
    case Outcome::kDegraded: return 200;
    case Outcome::kDropped:
    case Outcome::kRejected: return 503;
    case Outcome::kError: return HttpStatusOf(r.status);
  }
  return 500;
}

nlohmann::json ResultJson(const pipeline::Pipeline& p, const ServeResult& r) {
  if (r.outcome == Outcome::kOk || r.outcome == Outcome::kDegraded) return ServeResultToJson(p, r);
  return ErrorValue(HttpStatusOfResult(r),
                    r.outcome == Outcome::kError ? StatusCodeName(r.status.code()) : OutcomeName(r.outcome),
                    r.status.message());
}

// One request object -> ServeRequest for pipeline `p`.
Result<ServeRequest> ToServeRequest(const pipeline::Pipeline& p, nlohmann::json object) {
  ServeRequest r;
  APX_RETURN_IF_ERROR(ExtractServeOptions(object, &r));
  if (r.delta == 0 && p.spec().task == model::Task::kRegression) {
    return Status::InvalidArgument("'delta' must be > 0 for a regression pipeline, got 0");
  }
  APX_ASSIGN_OR_RETURN(r.request, pipeline::ParseRequestValue(p.spec(), object));
  return r;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The path of a request target: the query string dropped, %XX decoded (the bytes may be
// anything; they are only compared and quoted through DumpJson).
std::string DecodePath(std::string_view target) {
  // Absolute form (http://host:port/path), which servers must accept.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.substr(0, scheme.size()) == scheme) {
      const size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  target = target.substr(0, target.find('?'));
  std::string out;
  out.reserve(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == '%' && i + 2 < target.size()) {
      const int hi = HexDigit(target[i + 1]), lo = HexDigit(target[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(target[i]);
  }
  return out;
}

// "/v1/pipelines/{name}/{action}" -> name, action; false for any other shape.
bool SplitPipelinePath(std::string_view path, std::string* name, std::string* action) {
  constexpr std::string_view kPrefix = "/v1/pipelines/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return false;
  path.remove_prefix(kPrefix.size());
  const size_t slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  *name = std::string(path.substr(0, slash));
  *action = std::string(path.substr(slash + 1));
  return action->find('/') == std::string::npos;
}

// Constant-time comparison (no early exit on the first differing byte).
bool SameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace

bool IsLoopback(const std::string& host) {
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) return false;
  if (address.is_loopback()) return true;
  return address.is_v6() && address.to_v6().is_v4_mapped() &&
         net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6()).is_loopback();
}

Status CheckListenAddress(const std::string& host, int port) {
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument("--host '" + host + "' is not an IP address (" + ec.message() + ")");
  if (port < 0 || port > 65535) {
    return Status::InvalidArgument("--port " + std::to_string(port) + " is not in 0..65535");
  }
  net::io_context ioc;
  tcp::acceptor probe(ioc);
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  probe.open(endpoint.protocol(), ec);
  if (!ec) probe.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(endpoint, ec);
  if (ec) {
    return Status::Unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  }
  return Status::Ok();
}

class Session;

// Everything the sessions share. Sessions hold a reference, not ownership: they live in the
// io_context (pending handlers) or in worker callbacks, and ~Impl waits for the callbacks,
// then destroys the io_context, which destroys the sessions still parked in it.
class HttpServer::Impl {
 public:
  Impl(Service& service, Metrics& metrics, HttpOptions options)
      : service_(service), metrics_(metrics), options_(std::move(options)),
        ioc_(std::max(1, options_.io_threads)), acceptor_(ioc_), drain_timer_(ioc_),
        accept_retry_(ioc_) {}
  // REQUIRES: Run() has returned or was never called.
  ~Impl() {
    // Worker callbacks post into ioc_: none may be running when it goes.
    while (callbacks_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  Status Bind();
  void Run();
  void Stop();
  int port() const { return port_; }

  // Routes one request; the answer goes out through session->Reply, at once or (predictions)
  // from the event loop once the workers are done. Runs on the session's strand.
  void Handle(const std::shared_ptr<Session>& session, Request&& req);

  Service& service() { return service_; }
  const HttpOptions& options() const { return options_; }
  void ConnectionClosed() { connections_.fetch_sub(1, std::memory_order_relaxed); }
  std::atomic<int>& in_flight() { return in_flight_; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

 private:
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void Drain(std::chrono::steady_clock::time_point until);
  Response Listing(unsigned version, bool keep_alive);
  // Predictions: parse (off the loop for large bodies), validate, submit; the answer goes out
  // through Session::Finish / FinishLater. REQUIRES: in_flight_ counted for this request.
  void Predict(const std::shared_ptr<Session>& session, int index, bool batch, Request&& req);
  void PredictParsed(const std::shared_ptr<Session>& session, int index, bool batch, const Request& req,
                     bool on_loop);
  // A batch runs one item at a time (a batch takes at most one worker, never the queue).
  struct Batch;
  void SubmitBatchItem(const std::shared_ptr<Batch>& batch, size_t i);
  // Service::HandleAsync with the callback counted in callbacks_ until it has returned.
  void Submit(int index, ServeRequest request, Service::Done done);

  Service& service_;
  Metrics& metrics_;
  const HttpOptions options_;
  std::atomic<size_t> connections_{0};
  std::atomic<int> in_flight_{0};   // prediction requests read, answer not yet written
  std::atomic<int> callbacks_{0};   // Service callbacks and parse tasks not yet returned
  std::atomic<bool> stopping_{false};
  int port_ = 0;
  // Declared after the counters: destroying it destroys parked sessions, which count down.
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer drain_timer_;
  net::steady_timer accept_retry_;
  net::thread_pool parse_pool_{1};  // destroyed (joined) before ioc_
  net::thread_pool insert_pool_{1};  // table inserts, which wait on a database (not parsing)
};

// One connection: read a request (whole within request_timeout), answer it, repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // probe_only: a connection beyond max_connections (the probe reserve), answered only for
  // /healthz and /readyz, once, then closed.
  Session(tcp::socket&& socket, HttpServer::Impl& server, bool probe_only)
      : server_(server), stream_(std::move(socket)), deadline_(stream_.get_executor()),
        probe_only_(probe_only) {}
  ~Session() { server_.ConnectionClosed(); }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->WaitForRequest(); });
  }

  // Writes `res`, then reads the next request (or closes). Must run on the session's strand.
  void Reply(Response res) {
    auto shared = std::make_shared<Response>(std::move(res));
    // While stopping, every answer closes its connection ("Connection: close"): pipelined
    // requests behind it are not read, and the client knows to retry them elsewhere.
    if (server_.stopping()) closing_ = true;
    keep_alive_ = shared->keep_alive() && !closing_;
    if (!keep_alive_) shared->keep_alive(false);
    stream_.expires_after(server_.options().request_timeout);  // slow readers are cut off too
    http::async_write(stream_, *shared,
                      [self = shared_from_this(), shared](beast::error_code ec, size_t) {
                        self->OnWrite(ec);
                      });
  }

  // The answer to a prediction request (counted in in_flight): Reply and count it down. On
  // the strand.
  void Finish(Response res) {
    Reply(std::move(res));
    server_.in_flight().fetch_sub(1, std::memory_order_relaxed);
  }
  // Finish from any thread (workers, the parse thread): `make` runs on the strand. After Stop
  // the loop no longer runs and the handler is destroyed unrun with the io_context.
  template <class MakeResponse>
  void FinishLater(MakeResponse make) {
    net::post(stream_.get_executor(), [self = shared_from_this(), make = std::move(make)]() mutable {
      self->Finish(make());
    });
  }

  HttpServer::Impl& server() { return server_; }
  bool probe_only() const { return probe_only_; }

 private:
  // Idle phase: wait (idle_timeout) for the first byte of the next request, unless bytes of it
  // (pipelined) are already buffered.
  void WaitForRequest() {
    if (buffer_.size() > 0) return ReadRequest();
    stream_.expires_after(probe_only_ ? std::min(server_.options().idle_timeout, server_.options().request_timeout)
                                      : server_.options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->ReadRequest();
                            });
  }

  // The request, header then body, must be complete within request_timeout of now. The
  // deadline is a timer of its own, not the stream's expiry (which closes the socket): when
  // it passes, the read is cancelled and the client still gets a 408.
  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(server_.options().max_body_bytes);
    chunks_ = 0;
    parser_->on_chunk_header(chunk_limit_);  // the parser keeps a reference: a member
    stream_.expires_never();
    reading_ = true;
    timed_out_ = false;
    deadline_.expires_after(server_.options().request_timeout);
    deadline_.async_wait([self = shared_from_this(), generation = ++generation_](beast::error_code ec) {
      if (ec || !self->reading_ || generation != self->generation_) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    if (timed_out_) return OnReadError(net::error::operation_aborted);
    const auto& req = parser_->get();
    // Framing that another hop could read differently is refused (request smuggling): a
    // Transfer-Encoding other than exactly "chunked" (the body would otherwise be read as
    // empty and its bytes as the next request), chunked on HTTP/1.0, and HTTP/1.1 without
    // exactly one Host.
    if (req.count(http::field::transfer_encoding) > 0) {
      const auto te = req[http::field::transfer_encoding];
      if (req.count(http::field::transfer_encoding) != 1 || !beast::iequals(te, "chunked") ||
          req.version() < 11) {
        return RefuseAndClose(400, "BadRequest",
                              "unsupported Transfer-Encoding (only 'chunked', on HTTP/1.1)");
      }
    }
    if (req.version() >= 11 && req.count(http::field::host) != 1) {
      return RefuseAndClose(400, "BadRequest", "an HTTP/1.1 request needs exactly one Host header");
    }
    if (req[http::field::expect] == "100-continue" && !parser_->is_done()) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code wec, size_t) {
        if (wec) return self->Close();
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      self->reading_ = false;  // the Service's deadline governs from here
      self->deadline_.cancel();
      self->server_.Handle(self, self->parser_->release());
    });
  }

  void RefuseAndClose(int status, std::string_view code, std::string message) {
    reading_ = false;
    deadline_.cancel();
    closing_ = true;
    Reply(ErrorResponse(11, false, status, code, message));
  }

  // Malformed, oversized or late requests get an answer and the connection closes (the rest
  // of the stream cannot be trusted); resets just close.
  void OnReadError(beast::error_code ec) {
    if (timed_out_) {
      return RefuseAndClose(408, "RequestTimeout",
                            "the request did not arrive whole within " +
                                std::to_string(server_.options().request_timeout.count()) + " ms of its first byte");
    }
    reading_ = false;
    deadline_.cancel();
    if (ec == http::error::buffer_overflow) {
      return RefuseAndClose(413, "PayloadTooLarge", "request framing exceeds the connection's buffer");
    }
    if (ec == http::error::body_limit) {
      closing_ = true;
      return Reply(ErrorResponse(11, false, 413, "PayloadTooLarge",
                                 "request body exceeds " + std::to_string(server_.options().max_body_bytes) +
                                     " bytes"));
    }
    if (ec == http::error::header_limit) {
      closing_ = true;
      return Reply(ErrorResponse(11, false, 431, "HeaderTooLarge",
                                 "request header exceeds " + std::to_string(kHeaderLimit) + " bytes"));
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      closing_ = true;
      return Reply(ErrorResponse(11, false, 400, "BadRequest", "malformed HTTP request: " + ec.message()));
    }
    Close();
  }

  void OnWrite(beast::error_code ec) {
    if (ec) return Close();
    if (closing_) return Linger();
    if (!keep_alive_) return Close();
    WaitForRequest();
  }

  // After an error answer sent before the request was read whole (413, 400): stop sending and
  // discard what the client still sends for a moment, so that closing with unread bytes does
  // not reset the connection before the client has read the answer.
  void Linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    DiscardInput();
  }
  void DiscardInput() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 * 1024), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->DiscardInput();
    });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  HttpServer::Impl& server_;
  beast::tcp_stream stream_;
  net::steady_timer deadline_;  // the request deadline (ReadRequest)
  uint64_t generation_ = 0;     // which request the deadline belongs to
  bool reading_ = false;        // a request is being read (its deadline applies)
  bool timed_out_ = false;      // the deadline cancelled the read
  const bool probe_only_;
  // Bounded: a request (header, framing and body) never makes the connection hold more.
  beast::flat_buffer buffer_{kHeaderLimit + 64 * 1024 + 2 * (1 << 20)};
  std::optional<http::request_parser<http::string_body>> parser_;
  size_t chunks_ = 0;
  std::function<void(std::uint64_t, beast::string_view, beast::error_code&)> chunk_limit_ =
      [this](std::uint64_t, beast::string_view extensions, beast::error_code& ec) {
        if (extensions.size() > kMaxChunkExtension || ++chunks_ > kMaxChunks) ec = http::error::bad_chunk_extension;
      };
  bool keep_alive_ = true;
  bool closing_ = false;
};

Status HttpServer::Impl::Bind() {
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(options_.host, ec);
  if (ec) {
    return Status::InvalidArgument("--host '" + options_.host + "' is not an IP address (" +
                                   ec.message() + ")");
  }
  if (options_.port < 0 || options_.port > 65535) {
    return Status::InvalidArgument("--port " + std::to_string(options_.port) + " is not in 0..65535");
  }
  // Many idle connections are fine for an event loop, not for the default 1,024 descriptors.
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return Status::Unavailable("cannot open a socket for " + where + ": " + ec.message());
  // SO_REUSEADDR (rebind while old connections sit in TIME_WAIT) but never SO_REUSEPORT: a
  // second server on the same port must fail, not share it silently.
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  acceptor_.bind(endpoint, ec);
  if (ec) return Status::Unavailable("cannot listen on " + where + ": " + ec.message());
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("cannot listen on " + where + ": " + ec.message());
  port_ = acceptor_.local_endpoint().port();
  return Status::Ok();
}

void HttpServer::Impl::Run() {
  Accept();
  std::vector<std::thread> extra;
  for (int i = 1; i < options_.io_threads; ++i) extra.emplace_back([this] { ioc_.run(); });
  ioc_.run();
  for (std::thread& t : extra) t.join();
}

void HttpServer::Impl::Stop() {
  if (stopping_.exchange(true)) return;
  net::post(ioc_, [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    Drain(std::chrono::steady_clock::now() + kDrainTimeout);
  });
}

// Stops the event loop once every answer in flight is written (or at `until`).
void HttpServer::Impl::Drain(std::chrono::steady_clock::time_point until) {
  if (in_flight_.load() == 0 || std::chrono::steady_clock::now() >= until) {
    // Give the last writes a moment to leave, then stop.
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait([this](beast::error_code) { ioc_.stop(); });
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(10));
  drain_timer_.async_wait([this, until](beast::error_code) { Drain(until); });
}

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_),
                         [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping_.load()) return;
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    // Out of descriptors (EMFILE/ENFILE) or a transient error: retry shortly, do not spin.
    accept_retry_.expires_after(std::chrono::milliseconds(50));
    accept_retry_.async_wait([this](beast::error_code wec) {
      if (!wec) Accept();
    });
    return;
  }
  const size_t open = connections_.fetch_add(1, std::memory_order_relaxed);
  if (open >= options_.max_connections + kProbeReserve) {
    connections_.fetch_sub(1, std::memory_order_relaxed);
    // Best effort, without blocking the loop: one 503 and close.
    const std::string body = ErrorJson(503, "Unavailable", "too many open connections (limit " +
                                                                std::to_string(options_.max_connections) + ")");
    const std::string text = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
                             "Content-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body;
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(text), ignored);
    socket.close(ignored);
  } else {
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Session>(std::move(socket), *this, open >= options_.max_connections)->Start();
  }
  Accept();
}

Response HttpServer::Impl::Listing(unsigned version, bool keep_alive) {
  nlohmann::json list = nlohmann::json::array();
  for (int i = 0; i < service_.num_pipelines(); ++i) {
    const pipeline::Pipeline& p = service_.pipeline(i);
    const pipeline::PipelineSpec& spec = p.spec();
    const PipelineStatus st = service_.Snapshot(i);
    nlohmann::json fields = nlohmann::json::object();
    for (const pipeline::RequestField& f : spec.request_fields) {
      fields[f.name] = f.type == pipeline::FieldType::kNumber      ? "number"
                       : f.type == pipeline::FieldType::kTimestamp ? "timestamp"
                                                                   : "string";
    }
    nlohmann::json service_ms = nlohmann::json::object();
    for (int l = 0; l < kNumLevels; ++l) service_ms[std::string(LevelName(l))] = st.service_ms[l];
    list.push_back({{"name", spec.name},
                    {"task", model::TaskName(spec.task)},
                    {"delta", spec.guarantee.delta},
                    {"tau", spec.guarantee.tau},
                    {"request_fields", fields},
                    {"features", p.feature_names()},
                    {"level", LevelName(st.level)},
                    {"arrival_rate", st.arrival_rate},
                    {"desired_replicas", st.desired_replicas},
                    {"service_ms", service_ms}});
  }
  return MakeResponse(version, keep_alive, 200,
                      DumpJson({{"pipelines", list},
                                {"slo_ms", service_.options().slo_ms},
                                {"workers", service_.options().workers},
                                {"load_control", service_.options().load_control}}));
}

void HttpServer::Impl::Handle(const std::shared_ptr<Session>& session, Request&& req) {
  const unsigned version = req.version();
  const bool keep_alive = req.keep_alive();
  const std::string path = DecodePath(std::string_view(req.target().data(), req.target().size()));
  const http::verb method = req.method();
  const std::string method_name = SanitizeUtf8(std::string_view(req.method_string().data(), req.method_string().size()), 32);
  auto reply = [&](Response res) { session->Reply(std::move(res)); };
  auto not_allowed = [&] {
    reply(ErrorResponse(version, keep_alive, 405, "MethodNotAllowed",
                        method_name + " is not allowed on " + path));
  };

  if (!options_.auth_token.empty() && path != "/healthz" && path != "/readyz") {
    const auto header = req[http::field::authorization];
    const std::string_view given(header.data(), header.size());
    constexpr std::string_view kBearer = "Bearer ";
    const bool ok = given.substr(0, kBearer.size()) == kBearer &&
                    SameSecret(given.substr(kBearer.size()), options_.auth_token);
    if (!ok) {
      Response res = ErrorResponse(version, keep_alive, 401, "Unauthenticated",
                                   header.empty() ? "this server requires 'Authorization: Bearer <token>'"
                                                  : "the bearer token is not valid");
      res.set(http::field::www_authenticate, "Bearer");
      return reply(std::move(res));
    }
  }
  if (session->probe_only()) {
    // Beyond the connection limit: health probes are answered, everything else refused;
    // either way the connection closes (the reserve is for probes, not for clients).
    if (method == http::verb::get && (path == "/healthz" || path == "/readyz")) {
      return reply(MakeResponse(version, false, 200,
                                path == "/healthz" ? R"({"status":"ok"})" : R"({"status":"ready"})"));
    }
    return reply(ErrorResponse(version, false, 503, "Unavailable",
                               "too many open connections (limit " + std::to_string(options_.max_connections) +
                                   "); only /healthz and /readyz are answered"));
  }
  if (path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/v1/pipelines") {
    if (method != http::verb::get) return not_allowed();
    // The server listens only once every pipeline is loaded and calibrated: ready = up.
    if (path == "/healthz") return reply(MakeResponse(version, keep_alive, 200, R"({"status":"ok"})"));
    if (path == "/readyz") return reply(MakeResponse(version, keep_alive, 200, R"({"status":"ready"})"));
    if (path == "/metrics") {
      return reply(MakeResponse(version, keep_alive, 200, metrics_.Render(), "text/plain; version=0.0.4"));
    }
    return reply(Listing(version, keep_alive));
  }
  std::string name, action;
  if (SplitPipelinePath(path, &name, &action) && (action == "predict" || action == "predict_batch")) {
    if (method != http::verb::post) return not_allowed();
    const int index = service_.Find(name);
    if (index < 0) {
      std::string known;
      for (int i = 0; i < service_.num_pipelines(); ++i) {
        known += (known.empty() ? "" : ", ") + service_.pipeline(i).spec().name;
      }
      return reply(ErrorResponse(version, keep_alive, 404, "NotFound",
                                 "unknown pipeline '" + SanitizeUtf8(name, 100) + "' (serving: " + known + ")"));
    }
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    return Predict(session, index, action == "predict_batch", std::move(req));
  }
  constexpr std::string_view kTables = "/v1/tables/", kRows = "/rows";
  if (path.size() > kTables.size() + kRows.size() && path.substr(0, kTables.size()) == kTables &&
      path.substr(path.size() - kRows.size()) == kRows) {
    if (method != http::verb::post) return not_allowed();
    const std::string table(path.substr(kTables.size(), path.size() - kTables.size() - kRows.size()));
    int index = -1;
    std::string known;
    for (int i = 0; i < service_.num_pipelines(); ++i) {
      for (const pipeline::TableSpec& t : service_.pipeline(i).spec().tables) {
        if (t.schema.name == table && index < 0) index = i;
        if (("," + known + ",").find("," + t.schema.name + ",") == std::string::npos) {
          known += (known.empty() ? "" : ",") + t.schema.name;
        }
      }
    }
    if (index < 0) {
      return reply(ErrorResponse(version, keep_alive, 404, "NotFound",
                                 "no served pipeline has table '" + SanitizeUtf8(table, 100) + "' (tables: " + known + ")"));
    }
    // The insert waits on the database: off the event loop and off the parse thread (so a
    // slow database never delays predictions), one at a time.
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    callbacks_.fetch_add(1, std::memory_order_relaxed);
    net::post(insert_pool_, [this, session, index, table, req = std::move(req)] {
      const pipeline::Pipeline& p = service_.pipeline(index);
      const std::string content_type(req[http::field::content_type]);
      Response res;
      const pipeline::TableSpec* spec = p.spec().FindTable(table);
      auto rows = ParseRowsBody(req.body(), content_type, spec->schema);
      // Embedded: every other served pipeline loaded from the same table file sees the rows
      // too (logged once, by the first). Each is checked first: once the rows are logged they
      // are acknowledged.
      std::vector<const pipeline::Pipeline*> also;
      for (int i = 0; rows.ok() && !p.spec().backend.clickhouse() && i < service_.num_pipelines(); ++i) {
        const pipeline::Pipeline& other = service_.pipeline(i);
        const pipeline::TableSpec* same = other.spec().FindTable(table);
        if (i == index || other.spec().backend.clickhouse() || same == nullptr || same->snapshot != spec->snapshot) continue;
        const store::Table* loaded = other.store().table(table);
        const Status fits = loaded == nullptr ? Status::NotFound("table not loaded") : store::CheckTableMatches(**rows, loaded->schema());
        if (!fits.ok()) {
          rows = fits.WithPrefix("pipeline '" + other.spec().name + "' holds table '" + table + "' with other columns");
          break;
        }
        also.push_back(&other);
      }
      Result<int64_t> inserted = rows.ok() ? p.backend().InsertRows(**rows) : Result<int64_t>(rows.status());
      for (const pipeline::Pipeline* other : also) {
        if (!inserted.ok()) break;
        const Result<int64_t> applied = other->store().ApplyRows(**rows);
        if (!applied.ok()) {
          std::fprintf(stderr, "apxserve: rows logged for table '%s' not applied to pipeline '%s' (%s); it sees them after a restart\n",
                       table.c_str(), other->spec().name.c_str(), applied.status().message().c_str());
        }
      }
      if (inserted.ok()) {
        res = MakeResponse(req.version(), req.keep_alive(), 200,
                           DumpJson(nlohmann::json{{"table", table}, {"inserted", *inserted},
                                                   {"backend", p.spec().backend.type}}));
      } else {
        res = StatusResponse(req.version(), req.keep_alive(), inserted.status());
      }
      session->FinishLater([res = std::move(res)]() mutable { return std::move(res); });
      callbacks_.fetch_sub(1, std::memory_order_release);
    });
    return;
  }
  reply(ErrorResponse(version, keep_alive, 404, "NotFound",
                      "no route for " + method_name + " " + SanitizeUtf8(path, 200)));
}

void HttpServer::Impl::Predict(const std::shared_ptr<Session>& session, int index, bool batch, Request&& req) {
  if (req.body().size() <= kInlineParseBytes) return PredictParsed(session, index, batch, req, true);
  callbacks_.fetch_add(1, std::memory_order_relaxed);
  net::post(parse_pool_, [this, session, index, batch, req = std::move(req)] {
    PredictParsed(session, index, batch, req, false);
    callbacks_.fetch_sub(1, std::memory_order_release);
  });
}

struct HttpServer::Impl::Batch {
  std::shared_ptr<Session> session;
  int index = 0;
  unsigned version = 11;
  bool keep_alive = true;
  std::vector<ServeRequest> requests;
  std::vector<ServeResult> results;
};

void HttpServer::Impl::SubmitBatchItem(const std::shared_ptr<Batch>& batch, size_t i) {
  if (i == batch->requests.size()) {
    return batch->session->FinishLater([batch] {
      const Service& service = batch->session->server().service();
      nlohmann::json results = nlohmann::json::array();
      for (const ServeResult& r : batch->results) results.push_back(ResultJson(service.pipeline(batch->index), r));
      return MakeResponse(batch->version, batch->keep_alive, 200, DumpJson(nlohmann::json{{"results", results}}));
    });
  }
  Submit(batch->index, std::move(batch->requests[i]), [this, batch, i](ServeResult r) {
    batch->results[i] = std::move(r);
    SubmitBatchItem(batch, i + 1);
  });
}

void HttpServer::Impl::PredictParsed(const std::shared_ptr<Session>& session, int index, bool batch,
                                     const Request& req, bool on_loop) {
  const unsigned version = req.version();
  const bool keep_alive = req.keep_alive();
  auto finish = [&](Response res) {
    if (on_loop) return session->Finish(std::move(res));
    session->FinishLater([res = std::move(res)]() mutable { return std::move(res); });
  };
  auto fail = [&](const Status& status) { finish(StatusResponse(version, keep_alive, status)); };
  auto body = ParseJson(req.body(), "body");
  if (!body.ok()) return fail(body.status());
  const pipeline::Pipeline& p = service_.pipeline(index);

  if (!batch) {
    auto request = ToServeRequest(p, std::move(*body));
    if (!request.ok()) return fail(request.status());
    Submit(index, std::move(*request), [session, index, version, keep_alive](ServeResult r) {
      session->FinishLater([session, index, version, keep_alive, r = std::move(r)] {
        const Service& service = session->server().service();
        Response res = MakeResponse(version, keep_alive, HttpStatusOfResult(r),
                                    DumpJson(ResultJson(service.pipeline(index), r)));
        if (r.outcome == Outcome::kRejected || r.outcome == Outcome::kDropped) {
          res.set(http::field::retry_after, "1");
        }
        return res;
      });
    });
    return;
  }

  if (!body->is_object() || !body->contains("requests") || !(*body)["requests"].is_array() || body->size() != 1) {
    return fail(Status::InvalidArgument(R"(body must be {"requests": [ ... ]} (no other keys))"));
  }
  nlohmann::json& items = (*body)["requests"];
  if (items.size() > options_.max_batch) {
    return finish(ErrorResponse(version, keep_alive, 413, "PayloadTooLarge",
                                "batch of " + std::to_string(items.size()) + " requests exceeds the limit of " +
                                    std::to_string(options_.max_batch)));
  }
  // Validate everything first: a malformed item fails the batch before any work is done.
  auto state = std::make_shared<Batch>();
  state->session = session;
  state->index = index;
  state->version = version;
  state->keep_alive = keep_alive;
  state->requests.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto r = ToServeRequest(p, std::move(items[i]));
    if (!r.ok()) return fail(r.status().WithPrefix("requests[" + std::to_string(i) + "]"));
    state->requests.push_back(std::move(*r));
  }
  state->results.resize(state->requests.size());
  SubmitBatchItem(state, 0);
}

void HttpServer::Impl::Submit(int index, ServeRequest request, Service::Done done) {
  callbacks_.fetch_add(1, std::memory_order_relaxed);
  service_.HandleAsync(index, std::move(request), [this, done = std::move(done)](ServeResult r) {
    done(std::move(r));
    callbacks_.fetch_sub(1, std::memory_order_release);
  });
}

HttpServer::HttpServer(Service& service, Metrics& metrics, HttpOptions options)
    : impl_(std::make_unique<Impl>(service, metrics, std::move(options))) {}

HttpServer::~HttpServer() = default;

Status HttpServer::Bind() { return impl_->Bind(); }
int HttpServer::port() const { return impl_->port(); }
void HttpServer::Run() { impl_->Run(); }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace apx::serve
