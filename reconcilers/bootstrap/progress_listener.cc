#include "reconcilers/bootstrap/progress_listener.h"

#include <cpprest/filestream.h>
#include <cpprest/http_listener.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "metrics/cache_metrics.h"

namespace vmlab::reconcilers::bootstrap {

using web::http::experimental::listener::http_listener;

struct ProgressListeners::Listener {
  std::string url;
  std::unique_ptr<http_listener> http;
};

struct ProgressListeners::Archives {
  std::mutex mutex;
  std::map<std::string, std::vector<cache::ImageArchive>> by_lab;

  std::vector<cache::ImageArchive> Of(const std::string& lab) {
    std::lock_guard guard(mutex);
    const auto it = by_lab.find(lab);
    return it == by_lab.end() ? std::vector<cache::ImageArchive>{} : it->second;
  }
};

std::string ProgressUrl(const std::string& address, int port) {
  return fmt::format("http://{}:{}/v1/progress", address, port);
}

ProgressListeners::ProgressListeners(ProgressStore& store, metrics::CacheMetrics* metrics)
    : store_(store), metrics_(metrics), archives_(std::make_shared<Archives>()) {}

void ProgressListeners::SetArchives(const std::string& lab,
                                    std::vector<cache::ImageArchive> archives) {
  std::lock_guard guard(archives_->mutex);
  archives_->by_lab[lab] = std::move(archives);
  if (metrics_) {
    std::map<std::string, std::uintmax_t> sizes;  // id -> size, over every lab
    for (const auto& [name, list] : archives_->by_lab) {
      for (const auto& archive : list) sizes[archive.id] = archive.size;
    }
    double total = 0;
    for (const auto& [id, size] : sizes) total += static_cast<double>(size);
    metrics_->SetStoredBytes("archives", total);
  }
}

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
  const std::string base = fmt::format("http://{}:{}/", address, port);
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
    listener->http = std::make_unique<http_listener>(web::uri(base));
    ProgressStore& store = store_;
    std::shared_ptr<Archives> archives = archives_;
    metrics::CacheMetrics* metrics = metrics_;
    listener->http->support([&store, archives, metrics, lab](web::http::http_request request) {
      try {
        const std::string path = request.relative_uri().path();
        std::string authorization;
        if (auto it = request.headers().find("Authorization"); it != request.headers().end()) {
          authorization = it->second;
        }
        if (path == "/v1/progress") {
          if (request.method() != web::http::methods::POST) {
            request.reply(405, "POST a progress report\n", "text/plain");
            return;
          }
          if (request.headers().content_length() > kMaxReportBytes) {
            store.CountRefused(Verdict::kOversized);
            request.reply(413, R"({"result":"oversized"})", "application/json");
            return;
          }
          const std::string body = request.extract_string(true).get();
          const Verdict verdict = store.Report(lab, authorization, body);
          // The report's HMAC ran on one of cpprest's pool threads, which live
          // until the process ends: give back OpenSSL's per-thread state now.
          OPENSSL_thread_stop();
          request.reply(static_cast<web::http::status_code>(HttpStatus(verdict)),
                        fmt::format(R"({{"result":"{}"}})", ToString(verdict)), "application/json");
          return;
        }
        if (path != "/v1/archives" && !path.starts_with("/v1/archives/")) {
          request.reply(404, "not found\n", "text/plain");
          return;
        }
        if (request.method() != web::http::methods::GET) {
          request.reply(405, "GET the archives\n", "text/plain");
          return;
        }
        const auto node = store.Authenticate(lab, authorization);
        OPENSSL_thread_stop();
        if (!node) {
          request.reply(401, "a node token of this lab is needed\n", "text/plain");
          return;
        }
        const auto list = archives->Of(lab);
        if (path == "/v1/archives") {
          std::string text;
          for (const auto& archive : list) {
            text += fmt::format("{} {}", archive.id, archive.size);
            for (const auto& image : archive.images) text += " " + image;
            text += "\n";
          }
          request.reply(200, text, "text/plain");
          return;
        }
        const std::string id = path.substr(std::string_view("/v1/archives/").size());
        const auto found = std::find_if(list.begin(), list.end(),
                                        [&](const cache::ImageArchive& a) { return a.id == id; });
        if (found == list.end()) {
          request.reply(404, "no such archive\n", "text/plain");
          return;
        }
        auto stream = concurrency::streams::fstream::open_istream(found->path.string()).get();
        spdlog::info("lab {}: {} fetches image archive {} ({} bytes)", lab, *node,
                     found->id.substr(0, 12), found->size);
        if (metrics) {
          metrics->CountRequests("archives", 1, 0);
          metrics->CountServedBytes("archives", found->size);
        }
        // Sent without holding this pool thread for the whole transfer.
        request.reply(200, stream, found->size, "application/x-tar")
            .then([stream](pplx::task<void> sent) mutable {
              try {
                sent.get();
              } catch (const std::exception& e) {
                spdlog::warn("sending an image archive: {}", e.what());
              }
              // close() finishes on a pool thread; the file buffer must outlive it,
              // or that thread reads a freed buffer (seen by ASan under load).
              stream.close().then([stream](pplx::task<void> closed) {
                try {
                  closed.get();
                } catch (const std::exception& e) {
                  spdlog::warn("closing an image archive: {}", e.what());
                }
              });
            });
      } catch (const std::exception& e) {
        spdlog::warn("node request for lab {}: {}", lab, e.what());
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
  {
    std::lock_guard guard(archives_->mutex);
    archives_->by_lab.erase(lab);
  }
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
