// TLS files: what --tls-cert, --tls-key and --tls-client-ca hold, checked
// with OpenSSL before gRPC is given them (R-H3).
//
// CheckTlsFiles reads the three files and checks that the certificate file
// holds at least one PEM certificate, the key file a PEM private key that
// matches the first certificate, and the client CA file (when set) at least
// one PEM certificate. The daemon refuses to start when they do not
// (daemon/main.cc, exit code 2), and the reloader logs the same messages when
// rotated files do not (daemon/tls_reloader.h).
//
// Thread-safe: pure functions over the files' contents.
#ifndef REDRIVE_DAEMON_TLS_FILES_H_
#define REDRIVE_DAEMON_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/config.h"

namespace redrive {

// The served (first) certificate of --tls-cert, for log lines.
struct CertificateSummary {
  std::string subject;     // RFC 2253, e.g. "CN=redrived,O=example"
  std::string serial_hex;  // upper-case hex, as `openssl x509 -serial` prints it
  absl::Time not_after;
  int chain_length = 0;  // certificates in --tls-cert
  int client_cas = 0;    // certificates in --tls-client-ca (0 without mTLS)

  // "subject CN=..., serial 1A2B, expires 2027-01-01T00:00:00Z, chain of 2".
  std::string Describe() const;
};

// The contents of the TLS files, read once: the reloader compares them to
// see a rotation, and checks exactly what it compared.
struct TlsFileContents {
  std::string cert;
  std::string key;
  std::string client_ca;

  bool operator==(const TlsFileContents& other) const {
    return cert == other.cert && key == other.key && client_ca == other.client_ca;
  }
};

// Reads the files of `tls`. INVALID_ARGUMENT "--tls-key: cannot read 'PATH':
// REASON" for a file that cannot be read.
absl::StatusOr<TlsFileContents> ReadTlsFiles(const TlsConfig& tls);

// Checks `contents` (read from `tls`'s files; the paths name them in
// messages). INVALID_ARGUMENT naming the option and the file, e.g.
// "--tls-key: the private key in 'PATH' does not match the certificate in
// '--tls-cert' file 'PATH'".
absl::StatusOr<CertificateSummary> CheckTlsContents(const TlsConfig& tls,
                                                    const TlsFileContents& contents);

// ReadTlsFiles + CheckTlsContents.
absl::StatusOr<CertificateSummary> CheckTlsFiles(const TlsConfig& tls);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_TLS_FILES_H_
