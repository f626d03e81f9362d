// backend/clickhouse_client.cc: ClickHouse over HTTP (cpp-httplib), pooled keep-alive connections.
#include "backend/clickhouse_client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace apx::backend {
namespace {

// "Code: 60, e.displayText() = DB::Exception: Table default.x doesn't exist., e.what() = ..."
// -> "Code: 60: Table default.x doesn't exist." (the first line, without the boilerplate).
std::string ShortError(std::string_view body) {
  std::string_view line = body.substr(0, body.find('\n'));
  const size_t cut = line.find(", e.what()");
  if (cut != std::string_view::npos) line = line.substr(0, cut);
  std::string out(line);
  const std::string noise = " e.displayText() = DB::Exception:";
  if (size_t at = out.find(noise); at != std::string::npos) out.replace(at, noise.size(), "");
  if (out.size() > 600) out = out.substr(0, 600) + "...";
  return out;
}

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

Status LoadCredentials(ClickHouseConfig* config) {
  if (const char* user = std::getenv("APX_CLICKHOUSE_USER"); user != nullptr) config->user = user;
  if (const char* pw = std::getenv("APX_CLICKHOUSE_PASSWORD"); pw != nullptr) {
    config->password = pw;
  } else if (const char* file = std::getenv("APX_CLICKHOUSE_PASSWORD_FILE"); file != nullptr) {
    std::ifstream in(file);
    if (!in) return Status::IoError(std::string("cannot read APX_CLICKHOUSE_PASSWORD_FILE ") + file);
    std::getline(in, config->password);
  }
  return Status::Ok();
}

std::string QuoteString(std::string_view value) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(value.size() + 2);
  out += '\'';
  for (unsigned char c : value) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c > 0x7e) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
  return out;
}

Result<std::string> QuoteIdentifier(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (unsigned char c : name) ok = ok && (std::isalnum(c) || c == '_');
  if (!ok) {
    return Status::InvalidArgument("'" + std::string(name.substr(0, 80)) +
                                   "' is not a ClickHouse name apxserve uses (1-64 of [A-Za-z0-9_], "
                                   "not starting with a digit)");
  }
  return "`" + std::string(name) + "`";
}

ClickHouseClient::ClickHouseClient(ClickHouseConfig config, std::string host, int port)
    : config_(std::move(config)), host_(std::move(host)), port_(port) {}

ClickHouseClient::~ClickHouseClient() = default;

Result<std::unique_ptr<ClickHouseClient>> ClickHouseClient::Connect(const ClickHouseConfig& config) {
  std::string_view url = config.url;
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return Status::InvalidArgument("clickhouse url '" + config.url +
                                   "' must be http://host:port (the HTTP interface)");
  }
  url.remove_prefix(kScheme.size());
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  const size_t colon = url.rfind(':');
  std::string host(url.substr(0, colon));
  int port = 8123;
  if (colon != std::string_view::npos) {
    const std::string port_text(url.substr(colon + 1));
    char* end = nullptr;
    const long parsed = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || parsed <= 0 || parsed > 65535) {
      return Status::InvalidArgument("clickhouse url '" + config.url + "' has a bad port");
    }
    port = static_cast<int>(parsed);
  }
  if (host.empty() || host.find('/') != std::string::npos) {
    return Status::InvalidArgument("clickhouse url '" + config.url + "' has no host");
  }
  APX_RETURN_IF_ERROR(QuoteIdentifier(config.database).status().WithPrefix("clickhouse database"));
  std::unique_ptr<ClickHouseClient> client(new ClickHouseClient(config, host, port));
  if (!config.check_on_connect) return client;
  APX_ASSIGN_OR_RETURN(std::string pong, client->Post("", "SELECT 1", /*in_database=*/false));
  if (pong.substr(0, 1) != "1") {
    return Status::Unavailable("clickhouse at " + config.url + " answered '" + ShortError(pong) +
                               "' to SELECT 1");
  }
  return client;
}

std::unique_ptr<httplib::Client> ClickHouseClient::Acquire(bool fresh) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!fresh) ++statements_;
    if (!fresh && !idle_.empty()) {
      std::unique_ptr<httplib::Client> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<httplib::Client>(host_, port_);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);  // headers and body go out as separate writes: no 40 ms Nagle wait
  const auto ms = config_.timeout.count();
  c->set_connection_timeout(ms / 1000, (ms % 1000) * 1000);
  c->set_read_timeout(ms / 1000, (ms % 1000) * 1000);
  c->set_write_timeout(ms / 1000, (ms % 1000) * 1000);
  if (!config_.user.empty()) c->set_basic_auth(config_.user.c_str(), config_.password.c_str());
  return c;
}

void ClickHouseClient::Release(std::unique_ptr<httplib::Client> client) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(idle_.size()) < config_.pool_size) idle_.push_back(std::move(client));
}

int64_t ClickHouseClient::statements() const {
  std::lock_guard<std::mutex> lock(mu_);
  return statements_;
}

namespace {
constexpr char kCutMarker[] = " (the connection was cut after ";
}  // namespace

bool ClickHouseClient::WasCut(const Status& status) {
  return status.code() == StatusCode::kUnavailable && status.message().find(kCutMarker) != std::string::npos;
}

Result<std::string> ClickHouseClient::Post(std::string_view query_string, std::string_view body,
                                           bool in_database, std::chrono::milliseconds timeout,
                                           bool idempotent) const {
  std::unique_ptr<httplib::Client> c = Acquire();
  const std::chrono::milliseconds limit = timeout.count() > 0 ? timeout : config_.timeout;
  c->set_read_timeout(limit.count() / 1000, (limit.count() % 1000) * 1000);
  c->set_connection_timeout(limit.count() / 1000, (limit.count() % 1000) * 1000);
  c->set_write_timeout(limit.count() / 1000, (limit.count() % 1000) * 1000);
  std::string path = "/?";
  if (in_database) path += "database=" + UrlEncode(config_.database) + "&";
  path += query_string;
  const auto start = std::chrono::steady_clock::now();
  httplib::Result res = c->Post(path.c_str(), body.data(), body.size(), "text/plain");
  if (!res && res.error() == httplib::Error::Read && idempotent) {
    // Cut well before the limit (a connection reset, a server that closed a kept-alive
    // connection, an answer cut mid-way): a statement that changes nothing is sent once more
    // on a new connection, within the time left.
    const auto left = limit - std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (left > limit / 2) {
      c = Acquire(/*fresh=*/true);
      c->set_read_timeout(left.count() / 1000, (left.count() % 1000) * 1000);
      c->set_connection_timeout(left.count() / 1000, (left.count() % 1000) * 1000);
      c->set_write_timeout(left.count() / 1000, (left.count() % 1000) * 1000);
      res = c->Post(path.c_str(), body.data(), body.size(), "text/plain");
    }
  }
  if (!res) {
    const httplib::Error err = res.error();
    const std::string what = "clickhouse at " + config_.url + ": " + httplib::to_string(err);
    // A failed connection is not reused.
    if (err == httplib::Error::Read) {
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
      // A statement that changes nothing, cut early twice: the server is not answering. (A
      // cut INSERT keeps DeadlineExceeded: whether it was applied is unknown.)
      if (idempotent && took < limit / 2) {
        return Status::Unavailable(what + kCutMarker + std::to_string(took.count()) + " ms)");
      }
      return Status::DeadlineExceeded(what + " (no answer within " + std::to_string(limit.count()) +
                                      " ms, or the connection was cut)");
    }
    return Status::Unavailable(what);
  }
  if (res->status != 200) {
    Release(std::move(c));
    return Status::Internal("clickhouse at " + config_.url + ": " + ShortError(res->body));
  }
  Release(std::move(c));
  return std::move(res->body);
}

std::vector<std::string_view> SplitTabs(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  return out;
}

Result<std::string> ClickHouseClient::Query(std::string_view sql, std::chrono::milliseconds timeout,
                                            std::string_view query_id) const {
  std::string statement(sql);
  if (statement.find(" FORMAT ") == std::string::npos) statement += " FORMAT TabSeparated";
  std::string params;
  if (!query_id.empty()) {
    const bool valid = query_id.size() <= 64 && std::all_of(query_id.begin(), query_id.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_' || ch == '-';
    });
    if (!valid) return Status::InvalidArgument("clickhouse: query_id must be 1-64 characters of [A-Za-z0-9_-]");
    params = "log_queries=1&query_id=" + std::string(query_id);
  }
  static const bool trace = std::getenv("APX_CLICKHOUSE_TRACE") != nullptr;
  if (!trace) return Post(params, statement, true, timeout, /*idempotent=*/true);
  const auto start = std::chrono::steady_clock::now();
  Result<std::string> out = Post(params, statement, true, timeout, /*idempotent=*/true);
  std::fprintf(stderr, "clickhouse: %.3f ms, %zu bytes: %s\n",
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(),
               out.ok() ? out->size() : 0, statement.c_str());
  return out;
}

Status ClickHouseClient::Execute(std::string_view sql, std::chrono::milliseconds timeout) const {
  return Post("", sql, true, timeout).status();
}

Status ClickHouseClient::CreateDatabase() const {
  APX_ASSIGN_OR_RETURN(std::string db, QuoteIdentifier(config_.database));
  return Post("", "CREATE DATABASE IF NOT EXISTS " + db, /*in_database=*/false).status();
}

Status ClickHouseClient::InsertTsv(std::string_view table, std::string_view tsv, std::string_view columns,
                                   std::chrono::milliseconds timeout) const {
  APX_ASSIGN_OR_RETURN(std::string name, QuoteIdentifier(table));
  // Into a Distributed table the insert returns once every shard has its rows, not when they
  // are queued (ignored by other tables).
  const std::string query = "insert_distributed_sync=1&query=" + UrlEncode("INSERT INTO " + name + (columns.empty() ? std::string() : " (" + std::string(columns) + ")") +
                                      " FORMAT TabSeparated");
  return Post(query, tsv, true, timeout).status();
}

}  // namespace apx::backend
