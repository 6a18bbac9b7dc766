#include "reconcilers/bootstrap/progress_listener.h"

#include <cpprest/http_listener.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

namespace vmlab::reconcilers::bootstrap {

using web::http::experimental::listener::http_listener;

struct ProgressListeners::Listener {
  std::string url;
  std::unique_ptr<http_listener> http;
};

std::string ProgressUrl(const std::string& address, int port) {
  return fmt::format("http://{}:{}/v1/progress", address, port);
}

ProgressListeners::ProgressListeners(ProgressStore& store) : store_(store) {}

ProgressListeners::~ProgressListeners() {
  std::lock_guard guard(mutex_);
  for (auto& [lab, listener] : listeners_) {
    try {
      listener->http->close().wait();
    } catch (const std::exception&) {
    }
  }
}

Status ProgressListeners::Ensure(const std::string& lab, const std::string& address, int port) {
  const std::string url = ProgressUrl(address, port);
  std::lock_guard guard(mutex_);
  if (auto it = listeners_.find(lab); it != listeners_.end()) {
    if (it->second->url == url) return {};
    try {
      it->second->http->close().wait();
    } catch (const std::exception&) {
    }
    listeners_.erase(it);
  }
  auto listener = std::make_unique<Listener>();
  listener->url = url;
  try {
    listener->http = std::make_unique<http_listener>(web::uri(url));
    ProgressStore& store = store_;
    listener->http->support([&store, lab](web::http::http_request request) {
      try {
        if (request.method() != web::http::methods::POST) {
          request.reply(405, "POST a progress report\n", "text/plain");
          return;
        }
        if (request.headers().content_length() > kMaxReportBytes) {
          store.CountRefused(Verdict::kOversized);
          request.reply(413, R"({"result":"oversized"})", "application/json");
          return;
        }
        std::string authorization;
        if (auto it = request.headers().find("Authorization"); it != request.headers().end()) {
          authorization = it->second;
        }
        const std::string body = request.extract_string(true).get();
        const Verdict verdict = store.Report(lab, authorization, body);
        // The report's HMAC ran on one of cpprest's pool threads, which live
        // until the process ends: give back OpenSSL's per-thread state now.
        OPENSSL_thread_stop();
        request.reply(static_cast<web::http::status_code>(HttpStatus(verdict)),
                      fmt::format(R"({{"result":"{}"}})", ToString(verdict)), "application/json");
      } catch (const std::exception& e) {
        spdlog::warn("progress report for lab {}: {}", lab, e.what());
        request.reply(500, "internal error\n", "text/plain");
      }
    });
    listener->http->open().wait();
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot listen for node progress on {}: {}", url, e.what()));
  }
  spdlog::info("lab {}: nodes report progress to {}", lab, url);
  listeners_[lab] = std::move(listener);
  return {};
}

void ProgressListeners::Remove(const std::string& lab) {
  std::unique_ptr<Listener> listener;
  {
    std::lock_guard guard(mutex_);
    auto it = listeners_.find(lab);
    if (it == listeners_.end()) return;
    listener = std::move(it->second);
    listeners_.erase(it);
  }
  try {
    listener->http->close().wait();
  } catch (const std::exception& e) {
    spdlog::warn("closing the progress listener of lab {}: {}", lab, e.what());
  }
}

}  // namespace vmlab::reconcilers::bootstrap
