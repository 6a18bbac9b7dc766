#include "controller/http_server.h"

#include <arpa/inet.h>
#include <cpprest/http_listener.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>

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

}  // namespace

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
  std::string address;
  Handler handler;
  std::string host;
  int port = 0;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;
};

HttpServer::HttpServer(std::string address, Handler handler) : impl_(std::make_unique<Impl>()) {
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
    Handler handler = impl_->handler;
    impl_->listener->support([handler](web::http::http_request request) {
      try {
        const std::string path = web::uri::decode(request.relative_uri().path());
        if (request.headers().content_length() > kMaxBodyBytes) {
          request.reply(413, "request body too large\n", "text/plain");
          return;
        }
        if (path.size() > kMaxPathBytes) {
          request.reply(414, "request path too long\n", "text/plain");
          return;
        }
        ApiResponse response = handler(request.method(), path);
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
