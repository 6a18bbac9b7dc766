#include "controller/http_server.h"

#include <arpa/inet.h>
#include <cpprest/http_listener.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>

namespace vmlab::controller {
namespace {

constexpr std::uint64_t kMaxBodyBytes = 64 * 1024;
constexpr std::size_t kMaxPathBytes = 2048;

// A port the kernel considers free right now on `host` (an IPv4 literal or localhost).
Result<int> FreePort(const std::string& host) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeError(ErrorCode::kUnavailable, "cannot open a socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  if (inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &address.sin_addr) !=
      1) {
    close(fd);
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("port 0 needs an IPv4 address to listen on, not {}", host));
  }
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return MakeError(ErrorCode::kUnavailable, fmt::format("cannot bind {}:0", host));
  }
  close(fd);
  return ntohs(address.sin_port);
}

// Token buckets per client address. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(double per_second, double burst) : per_second_(per_second), burst_(burst) {}

  bool Allow(const std::string& client) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard guard(mutex_);
    if (buckets_.size() > kMaxClients) Prune(now);
    auto [it, added] = buckets_.try_emplace(client, Bucket{burst_, now});
    Bucket& b = it->second;
    if (!added) {
      const double seconds = std::chrono::duration<double>(now - b.refilled).count();
      b.tokens = std::min(burst_, b.tokens + seconds * per_second_);
      b.refilled = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point refilled;
  };
  static constexpr std::size_t kMaxClients = 4096;

  // Forgets clients whose buckets are full again (they lose nothing).
  void Prune(std::chrono::steady_clock::time_point now) {
    std::erase_if(buckets_, [&](const auto& entry) {
      const double seconds = std::chrono::duration<double>(now - entry.second.refilled).count();
      return entry.second.tokens + seconds * per_second_ >= burst_;
    });
  }

  const double per_second_;
  const double burst_;
  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
};

bool SameToken(std::string_view given, std::string_view expected) {
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

}  // namespace

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  if (host.starts_with("::ffff:")) host.remove_prefix(7);  // an IPv4 client of an IPv6 listener
  in_addr address{};
  const std::string text(host);
  return inet_pton(AF_INET, text.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

Result<std::string> ReadBearerToken(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: cannot read the token file (its first line is the token)", file.string()));
  }
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!line.empty() && blank(line.back())) line.pop_back();
  std::size_t start = 0;
  while (start < line.size() && blank(line[start])) ++start;
  line.erase(0, start);
  const bool printable = std::all_of(line.begin(), line.end(), [](char c) {
    return static_cast<unsigned char>(c) > ' ' && static_cast<unsigned char>(c) < 0x7f;
  });
  if (line.size() < 16 || !printable) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: the token must be at least 16 printable characters without "
                                 "spaces on the first line (e.g. `openssl rand -hex 32 > {}`)",
                                 file.string(), file.string()));
  }
  return line;
}

Result<std::pair<std::string, int>> ParseListenAddress(std::string_view address) {
  const auto colon = address.rfind(':');
  int port = -1;
  if (colon != std::string_view::npos && colon > 0) {
    const std::string_view digits = address.substr(colon + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc() || end != digits.data() + digits.size()) port = -1;
  }
  if (port < 0 || port > 65535) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("listen address \"{}\" is not HOST:PORT (such as 127.0.0.1:9440)", address));
  }
  return std::pair{std::string(address.substr(0, colon)), port};
}

struct HttpServer::Impl {
  Impl(HttpServerLimits l)
      : limits(std::move(l)), rates(limits.requests_per_second, limits.burst) {}

  // The answer to a request that must not reach the handler, if any.
  std::optional<ApiResponse> Refusal(const web::http::http_request& request,
                                     const std::string& path) {
    const std::string client = request.remote_address();
    if ((limits.rate_limit_loopback || !IsLoopbackHost(client)) && !rates.Allow(client)) {
      return ApiResponse{429, "text/plain", "too many requests; slow down\n"};
    }
    if (!limits.bearer_token.empty() && !limits.open_paths.contains(path)) {
      const auto& headers = request.headers();
      const auto header = headers.find(web::http::header_names::authorization);
      constexpr std::string_view kBearer = "Bearer ";
      if (header == headers.end() || !std::string_view(header->second).starts_with(kBearer) ||
          !SameToken(std::string_view(header->second).substr(kBearer.size()),
                     limits.bearer_token)) {
        return ApiResponse{401, "text/plain",
                           "a bearer token is required (Authorization: Bearer TOKEN)\n"};
      }
    }
    return std::nullopt;
  }

  std::string address;
  Handler handler;
  HttpServerLimits limits;
  RateLimiter rates;
  std::atomic<int> in_flight{0};
  std::string host;
  int port = 0;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;
};

HttpServer::HttpServer(std::string address, Handler handler, HttpServerLimits limits)
    : impl_(std::make_unique<Impl>(std::move(limits))) {
  impl_->address = std::move(address);
  impl_->handler = std::move(handler);
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  auto parsed = ParseListenAddress(impl_->address);
  if (!parsed) return std::unexpected(parsed.error());
  impl_->host = parsed->first;
  impl_->port = parsed->second;
  if (impl_->port == 0) {
    auto port = FreePort(impl_->host);
    if (!port) return std::unexpected(port.error());
    impl_->port = *port;
  }
  try {
    impl_->listener =
        std::make_unique<web::http::experimental::listener::http_listener>(web::uri(url()));
    Impl* impl = impl_.get();
    impl_->listener->support([impl](web::http::http_request request) {
      // Counted from arrival to reply: more at once than the bound get 503.
      struct Slot {
        std::atomic<int>& count;
        ~Slot() { --count; }
      } slot{impl->in_flight};
      const int in_flight = ++impl->in_flight;
      try {
        if (in_flight > impl->limits.max_in_flight) {
          web::http::http_response busy(503);
          busy.headers().add(web::http::header_names::retry_after, "1");
          busy.set_body("too many requests at once; retry\n", "text/plain");
          request.reply(busy);
          return;
        }
        const std::string path = web::uri::decode(request.relative_uri().path());
        if (request.headers().content_length() > kMaxBodyBytes) {
          request.reply(413, "request body too large\n", "text/plain");
          return;
        }
        if (path.size() > kMaxPathBytes) {
          request.reply(414, "request path too long\n", "text/plain");
          return;
        }
        if (auto refusal = impl->Refusal(request, path)) {
          web::http::http_response answer(static_cast<web::http::status_code>(refusal->status));
          if (refusal->status == 401) {
            answer.headers().add(web::http::header_names::www_authenticate,
                                 "Bearer realm=\"vmlab\"");
          } else {
            answer.headers().add(web::http::header_names::retry_after, "1");
          }
          answer.set_body(refusal->body, refusal->content_type);
          request.reply(answer);
          return;
        }
        ApiResponse response = impl->handler(request.method(), path);
        if (request.method() == web::http::methods::HEAD) response.body.clear();
        request.reply(static_cast<web::http::status_code>(response.status), response.body,
                      response.content_type);
      } catch (const std::exception& e) {
        spdlog::error("HTTP handler failed: {}", e.what());
        request.reply(500, "internal error\n", "text/plain");
      }
    });
    impl_->listener->open().wait();
  } catch (const std::exception& e) {
    impl_->listener.reset();
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot listen on {}: {}", impl_->address, e.what()));
  }
  return {};
}

void HttpServer::Stop() {
  if (!impl_->listener) return;
  try {
    impl_->listener->close().wait();
  } catch (const std::exception& e) {
    spdlog::warn("closing the HTTP listener: {}", e.what());
  }
  impl_->listener.reset();
}

int HttpServer::port() const { return impl_->port; }

std::string HttpServer::url() const {
  return fmt::format("http://{}:{}", impl_->host, impl_->port);
}

}  // namespace vmlab::controller
