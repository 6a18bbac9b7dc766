#include "reconcilers/cache/image_warmer.h"

#include <cpprest/filestream.h>
#include <cpprest/http_client.h>
#include <cpprest/json.h>
#include <fmt/format.h>

#include <vector>

#include "reconcilers/cache/cache_sets.h"

namespace vmlab::reconcilers::cache {
namespace {

constexpr const char* kManifestTypes =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

web::http::http_response Get(web::http::client::http_client& client, const std::string& path,
                             const char* accept) {
  web::http::http_request request(web::http::methods::GET);
  request.set_request_uri(path);
  request.headers().add(web::http::header_names::user_agent, kWarmUserAgent);
  if (accept) request.headers().add(web::http::header_names::accept, accept);
  return client.request(request).get();
}

}  // namespace

std::pair<std::string, std::string> RepositoryAndReference(const std::string& reference) {
  const std::string registry = RegistryOf(reference);
  const std::string rest = reference.substr(registry.size() + 1);
  if (const auto at = rest.find('@'); at != std::string::npos) {
    std::string repository = rest.substr(0, at);
    // NAME:TAG@DIGEST: the digest decides; the tag is not part of the repository.
    if (const auto colon = repository.rfind(':');
        colon != std::string::npos && repository.find('/', colon) == std::string::npos) {
      repository.resize(colon);
    }
    return {repository, rest.substr(at + 1)};
  }
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find('/', colon) != std::string::npos) {
    return {rest, "latest"};
  }
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

Result<Warmed> WarmImage(const std::string& mirror_url, const std::string& reference,
                         std::chrono::seconds timeout) {
  const auto [repository, tag] = RepositoryAndReference(reference);
  web::http::client::http_client_config config;
  config.set_timeout(timeout);
  Warmed warmed;
  try {
    web::http::client::http_client client(web::uri(mirror_url), config);
    auto manifest_of = [&](const std::string& ref) -> Result<web::json::value> {
      auto response =
          Get(client, fmt::format("/v2/{}/manifests/{}", repository, ref), kManifestTypes);
      if (response.status_code() != 200) {
        return MakeError(ErrorCode::kUnavailable, fmt::format("{}: manifest {}: HTTP {}", reference,
                                                              ref, response.status_code()));
      }
      return response.extract_json(true).get();
    };
    auto manifest = manifest_of(tag);
    if (!manifest) return std::unexpected(manifest.error());
    if (manifest->has_array_field("manifests")) {
      // An index: the platform vmlab's nodes run.
      std::string digest;
      const auto entries = manifest->at("manifests").as_array();
      for (const auto& entry : entries) {
        if (!entry.has_object_field("platform")) continue;
        const auto& platform = entry.at("platform");
        if (platform.has_string_field("os") && platform.at("os").as_string() == "linux" &&
            platform.has_string_field("architecture") &&
            platform.at("architecture").as_string() == "amd64") {
          digest = entry.at("digest").as_string();
          break;
        }
      }
      if (digest.empty()) {
        return MakeError(ErrorCode::kNotFound,
                         fmt::format("{}: no linux/amd64 image in its index", reference));
      }
      manifest = manifest_of(digest);
      if (!manifest) return std::unexpected(manifest.error());
    }
    std::vector<std::string> blobs;
    if (manifest->has_object_field("config")) {
      blobs.push_back(manifest->at("config").at("digest").as_string());
    }
    if (manifest->has_array_field("layers")) {
      const auto layers = manifest->at("layers").as_array();
      for (const auto& layer : layers) blobs.push_back(layer.at("digest").as_string());
    }
    for (const auto& digest : blobs) {
      auto response = Get(client, fmt::format("/v2/{}/blobs/{}", repository, digest), nullptr);
      if (response.status_code() != 200) {
        return MakeError(ErrorCode::kUnavailable,
                         fmt::format("{}: blob {}: HTTP {}", reference, digest.substr(0, 19),
                                     response.status_code()));
      }
      // The body goes nowhere: the mirror keeps it, vmlab does not.
      auto sink = concurrency::streams::fstream::open_ostream("/dev/null").get();
      warmed.bytes += response.body().read_to_end(sink.streambuf()).get();
      sink.close().get();
      ++warmed.blobs;
    }
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kUnavailable, fmt::format("{}: {}", reference, e.what()));
  }
  return warmed;
}

}  // namespace vmlab::reconcilers::cache
