// TlsReloader: the gRPC server credentials of the TLS listeners, built on
// files that are re-read while the daemon runs (R-H3).
//
// Serving: gRPC's FileWatcherCertificateProvider reads --tls-cert and
// --tls-key (and --tls-client-ca) every --tls-reload-interval-ms and gives
// changed contents to the handshakes of new connections; established
// connections keep the certificate they were made with. Paths are opened
// anew each time, so both an in-place rewrite and cert-manager's symlink
// swap are seen.
//
// What gRPC 1.51 does with bad files (tests/e2e/tls/test_tls.py): a file it
// cannot read leaves it serving what it loaded last; contents it cannot use
// (a key that does not match the certificate, garbage) make it drop the old
// certificate, so new TLS handshakes fail until the files are fixed. Hence
// rotated files must be written atomically (rename, or the symlink swap of
// Kubernetes secret volumes).
//
// Reporting: the provider tells nobody when it loads new files, so a thread
// here reads the same files on the same interval and, once per distinct
// contents, logs at info the new certificate (subject, serial, expiry) or at
// error why the new contents cannot be used (CheckTlsContents' message).
// Nothing here ends the daemon after start.
//
// Thread-safe. The credentials stay valid after the reloader is destroyed
// (gRPC holds the provider).
#ifndef REDRIVE_DAEMON_TLS_RELOADER_H_
#define REDRIVE_DAEMON_TLS_RELOADER_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "daemon/config.h"
#include "daemon/tls_files.h"

namespace redrive {

class TlsReloader {
 public:
  // Checks the files (CheckTlsFiles: INVALID_ARGUMENT naming the option),
  // builds the credentials and starts the reporting thread. `tls` must be
  // enabled.
  static absl::StatusOr<std::unique_ptr<TlsReloader>> Start(const TlsConfig& tls);
  ~TlsReloader();  // stops the reporting thread

  TlsReloader(const TlsReloader&) = delete;
  TlsReloader& operator=(const TlsReloader&) = delete;

  // For the TLS listeners: the server certificate, and with --tls-client-ca a
  // client certificate that chains to it is required and verified.
  const std::shared_ptr<grpc::ServerCredentials>& credentials() const { return credentials_; }

  // The certificate of the contents last seen valid.
  CertificateSummary current() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  TlsReloader(const TlsConfig& tls, TlsFileContents contents, CertificateSummary summary);
  void Run();
  // Reads the files once; logs when their contents differ from the last seen.
  void CheckOnce() ABSL_LOCKS_EXCLUDED(mu_);

  const TlsConfig tls_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  absl::Notification stop_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  // The contents last read (valid or not) and, when they could not be read,
  // the error: each distinct state is logged once.
  TlsFileContents last_contents_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  CertificateSummary current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_TLS_RELOADER_H_
