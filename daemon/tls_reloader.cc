#include "daemon/tls_reloader.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <spdlog/spdlog.h>

#include <string>
#include <utility>

#include "absl/time/time.h"

namespace redrive {

absl::StatusOr<std::unique_ptr<TlsReloader>> TlsReloader::Start(const TlsConfig& tls) {
  absl::StatusOr<TlsFileContents> contents = ReadTlsFiles(tls);
  if (!contents.ok()) return contents.status();
  absl::StatusOr<CertificateSummary> summary = CheckTlsContents(tls, *contents);
  if (!summary.ok()) return summary.status();
  spdlog::info("TLS on the TCP gRPC listeners{}: {}; the files are re-read every {} s",
               tls.mutual() ? ", client certificates required (mTLS)" : "", summary->Describe(),
               tls.reload_interval_ms / 1000);
  return std::unique_ptr<TlsReloader>(
      new TlsReloader(tls, *std::move(contents), *std::move(summary)));
}

TlsReloader::TlsReloader(const TlsConfig& tls, TlsFileContents contents, CertificateSummary summary)
    : tls_(tls) {
  // gRPC counts the interval in whole seconds (the option is validated as such).
  const unsigned int interval_s = tls.reload_interval_ms / 1000;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.client_ca_file, interval_s);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.mutual()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  credentials_ = grpc::experimental::TlsServerCredentials(options);
  {
    absl::MutexLock lock(&mu_);
    last_contents_ = std::move(contents);
    current_ = std::move(summary);
  }
  thread_ = std::thread([this] { Run(); });
}

TlsReloader::~TlsReloader() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

CertificateSummary TlsReloader::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void TlsReloader::Run() {
  const absl::Duration interval = absl::Milliseconds(tls_.reload_interval_ms);
  while (!stop_.WaitForNotificationWithTimeout(interval)) CheckOnce();
}

void TlsReloader::CheckOnce() {
  absl::StatusOr<TlsFileContents> contents = ReadTlsFiles(tls_);
  if (!contents.ok()) {
    std::string error(contents.status().message());
    {
      absl::MutexLock lock(&mu_);
      if (error == last_error_) return;
      last_error_ = error;
    }
    spdlog::error(
        "TLS: {}; new connections still get the certificate loaded last; checked "
        "again in {} s",
        error, tls_.reload_interval_ms / 1000);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    const bool was_unreadable = !last_error_.empty();
    last_error_.clear();
    if (*contents == last_contents_) {
      if (was_unreadable) spdlog::info("TLS: the files can be read again, unchanged");
      return;
    }
    last_contents_ = *contents;
  }
  absl::StatusOr<CertificateSummary> summary = CheckTlsContents(tls_, *contents);
  if (!summary.ok()) {
    spdlog::error(
        "TLS: the files changed but cannot be used: {}; new TLS connections fail until they are "
        "fixed (checked again in {} s; write rotated files atomically)",
        std::string(summary.status().message()), tls_.reload_interval_ms / 1000);
    return;
  }
  spdlog::info("TLS: new certificate in {}: {}; new connections get it within {} s", tls_.cert_file,
               summary->Describe(), tls_.reload_interval_ms / 1000);
  absl::MutexLock lock(&mu_);
  current_ = *std::move(summary);
}

}  // namespace redrive
