// backend/clickhouse_client.h
//
// A small client for ClickHouse's HTTP interface (https://clickhouse.com/docs/en/interfaces/http):
// statements are POSTed as the request body, results come back as TabSeparated text. A pool of
// keep-alive connections serves concurrent callers; every call has a timeout; a server that is
// down, slow or answers an error gives a Status naming the server and ClickHouse's own message.
//
// ClickHouse 18.16 (Debian 12's package) has no query parameters, so every value that reaches
// SQL goes through QuoteString / QuoteIdentifier, which escape every byte that could end a
// literal (docs/clickhouse.md, "Safety").
//
// Thread safety: Query/Execute may be called concurrently (the pool hands each call its own
// connection).
#ifndef APX_BACKEND_CLICKHOUSE_CLIENT_H_
#define APX_BACKEND_CLICKHOUSE_CLIENT_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace httplib {
class Client;
}

namespace apx::backend {

struct ClickHouseConfig {
  std::string url;                 // http://host:port of the HTTP interface (no path)
  std::string database = "default";
  std::string user;                // empty: ClickHouse's `default` user
  std::string password;
  std::chrono::milliseconds timeout{10000};  // per statement (connect, send and receive)
  int pool_size = 8;               // connections kept alive
  // Connect checks that the server answers (SELECT 1). False for a shard read shard by shard:
  // one that is down when the pipeline opens is then left out of rounds, not a failed start.
  bool check_on_connect = true;
};

// The credentials for `config` from the environment: APX_CLICKHOUSE_USER and either
// APX_CLICKHOUSE_PASSWORD or APX_CLICKHOUSE_PASSWORD_FILE (a file whose first line is the
// password). Never from a spec. IoError when the password file cannot be read.
Status LoadCredentials(ClickHouseConfig* config);

// A ClickHouse string literal holding exactly `value`'s bytes: quotes and backslashes are
// escaped, every byte below 0x20 or above 0x7e (NUL, newlines, invalid UTF-8 ...) is written as
// \xHH, so nothing in `value` can end the literal or be read as SQL.
std::string QuoteString(std::string_view value);

// A back-quoted identifier. InvalidArgument unless `name` is 1-64 characters of [A-Za-z0-9_]
// not starting with a digit (apxserve only creates such names; anything else is refused, not
// escaped).
Result<std::string> QuoteIdentifier(std::string_view name);

// The fields of one TabSeparated line (no unescaping: apxserve's statements return numbers,
// arrays and counts).
std::vector<std::string_view> SplitTabs(std::string_view line);

class ClickHouseClient {
 public:
  // Parses the URL and checks the server answers (SELECT 1, unless !check_on_connect).
  // InvalidArgument for a URL that is not http://host:port; Unavailable when nothing answers.
  static Result<std::unique_ptr<ClickHouseClient>> Connect(const ClickHouseConfig& config);
  // True for the Unavailable a statement returns when its answer was cut twice (the server
  // took it, then the connection broke): not a server that refuses connections.
  static bool WasCut(const Status& status);
  ~ClickHouseClient();

  // Runs a statement that returns rows (a SELECT: it changes nothing, so a connection cut
  // early is retried once on a new connection); the result is ClickHouse's TabSeparated
  // output (append "FORMAT TabSeparated" is done here unless the statement names a format).
  // Errors: Unavailable (connection refused, or cut again), DeadlineExceeded (timeout),
  // Internal with ClickHouse's message (bad SQL, missing table ...).
  // `timeout` > 0 replaces config().timeout for this statement (whole-table work).
  // `query_id` non-empty: the statement runs under that id with log_queries=1, so that it
  // appears in the server's system.query_log (`apxserve profile`; 1-64 characters of
  // [A-Za-z0-9_-], InvalidArgument otherwise).
  Result<std::string> Query(std::string_view sql, std::chrono::milliseconds timeout = {},
                            std::string_view query_id = {}) const;
  // Runs a statement without a result (DDL, INSERT ... VALUES). Same errors.
  Status Execute(std::string_view sql, std::chrono::milliseconds timeout = {}) const;
  // INSERT INTO `table` [(columns)] FORMAT TabSeparated with `tsv` (rows, one per line) as the
  // data; `columns`: a list of quoted names, empty for all columns in table order.
  Status InsertTsv(std::string_view table, std::string_view tsv, std::string_view columns = "",
                   std::chrono::milliseconds timeout = {}) const;

  // CREATE DATABASE IF NOT EXISTS for the configured database.
  Status CreateDatabase() const;

  const ClickHouseConfig& config() const { return config_; }
  // Statements sent so far (all callers).
  int64_t statements() const;

 private:
  explicit ClickHouseClient(ClickHouseConfig config, std::string host, int port);
  // idempotent: a connection cut early is retried once on a new one (Query: SELECTs only).
  Result<std::string> Post(std::string_view query_string, std::string_view body,
                           bool in_database = true, std::chrono::milliseconds timeout = {},
                           bool idempotent = false) const;
  // A kept-alive connection, or a new one (always new when `fresh`: a retry; not counted
  // as a statement).
  std::unique_ptr<httplib::Client> Acquire(bool fresh = false) const;
  void Release(std::unique_ptr<httplib::Client> client) const;

  ClickHouseConfig config_;
  std::string host_;
  int port_ = 0;
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<httplib::Client>> idle_;
  mutable int64_t statements_ = 0;
};

}  // namespace apx::backend

#endif  // APX_BACKEND_CLICKHOUSE_CLIENT_H_
