#include "daemon/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/errno_message.h"

namespace redrive {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::Status Bad(absl::string_view option, absl::string_view why) {
  // What OpenSSL queued on this thread is replaced by our message.
  ERR_clear_error();
  return absl::InvalidArgumentError(absl::StrCat("--", option, ": ", why));
}

absl::StatusOr<std::string> ReadFile(absl::string_view option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Bad(option, absl::StrCat("cannot read '", path, "': ", ErrnoMessage(errno)));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

BioPtr MemoryBio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Every PEM certificate in `pem`, in order.
std::vector<X509Ptr> ReadCertificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = MemoryBio(pem);
  while (bio != nullptr) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) break;
    out.push_back(std::move(cert));
  }
  ERR_clear_error();  // the end of the data reads as an error
  return out;
}

// Never asks for a passphrase (OpenSSL's default callback reads the
// terminal): an encrypted key fails to load.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return 0; }

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

CertificateSummary Summarize(X509* cert) {
  CertificateSummary s;
  BioPtr subject(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(subject.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  s.subject = BioText(subject.get());
  BioPtr serial(BIO_new(BIO_s_mem()));
  i2a_ASN1_INTEGER(serial.get(), X509_get0_serialNumber(cert));
  s.serial_hex = BioText(serial.get());
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
    s.not_after = absl::FromTimeT(timegm(&tm));
  } else {
    s.not_after = absl::InfinitePast();
  }
  return s;
}

}  // namespace

std::string CertificateSummary::Describe() const {
  return absl::StrCat(
      "subject ", subject.empty() ? "(empty)" : subject, ", serial ", serial_hex, ", expires ",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", not_after, absl::UTCTimeZone()), ", chain of ",
      chain_length,
      client_cas > 0 ? absl::StrCat(", ", client_cas, " client CA certificate(s)") : std::string());
}

absl::StatusOr<TlsFileContents> ReadTlsFiles(const TlsConfig& tls) {
  TlsFileContents c;
  absl::StatusOr<std::string> cert = ReadFile("tls-cert", tls.cert_file);
  if (!cert.ok()) return cert.status();
  c.cert = *std::move(cert);
  absl::StatusOr<std::string> key = ReadFile("tls-key", tls.key_file);
  if (!key.ok()) return key.status();
  c.key = *std::move(key);
  if (tls.mutual()) {
    absl::StatusOr<std::string> ca = ReadFile("tls-client-ca", tls.client_ca_file);
    if (!ca.ok()) return ca.status();
    c.client_ca = *std::move(ca);
  }
  return c;
}

absl::StatusOr<CertificateSummary> CheckTlsContents(const TlsConfig& tls,
                                                    const TlsFileContents& contents) {
  std::vector<X509Ptr> chain = ReadCertificates(contents.cert);
  if (chain.empty()) {
    return Bad("tls-cert",
               absl::StrCat("'", tls.cert_file, "' holds no PEM certificate (BEGIN CERTIFICATE)"));
  }
  BioPtr key_bio = MemoryBio(contents.key);
  PkeyPtr key(key_bio == nullptr
                  ? nullptr
                  : PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    return Bad("tls-key", absl::StrCat("'", tls.key_file,
                                       "' holds no PEM private key (or an encrypted one, which "
                                       "gRPC cannot use)"));
  }
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    return Bad("tls-key", absl::StrCat("the private key in '", tls.key_file,
                                       "' does not match the certificate in '", tls.cert_file,
                                       "' (--tls-cert)"));
  }
  CertificateSummary summary = Summarize(chain.front().get());
  summary.chain_length = static_cast<int>(chain.size());
  if (tls.mutual()) {
    summary.client_cas = static_cast<int>(ReadCertificates(contents.client_ca).size());
    if (summary.client_cas == 0) {
      return Bad("tls-client-ca", absl::StrCat("'", tls.client_ca_file,
                                               "' holds no PEM certificate (BEGIN CERTIFICATE)"));
    }
  }
  ERR_clear_error();
  return summary;
}

absl::StatusOr<CertificateSummary> CheckTlsFiles(const TlsConfig& tls) {
  absl::StatusOr<TlsFileContents> contents = ReadTlsFiles(tls);
  if (!contents.ok()) return contents.status();
  return CheckTlsContents(tls, *contents);
}

}  // namespace redrive
