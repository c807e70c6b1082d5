#include "server/daemon/auth.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace anerd::daemon {
namespace {

constexpr size_t kMinTokenChars = 16;
constexpr char kBearer[] = "Bearer ";

class TokenAuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenAuthProcessor(std::vector<NamedToken> tokens) : tokens_(std::move(tokens)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) override {
    auto it = auth_metadata.find("authorization");
    if (it == auth_metadata.end()) {
      return {grpc::StatusCode::UNAUTHENTICATED,
              "missing bearer token (send 'authorization: Bearer TOKEN'; anectl --token-file)"};
    }
    const absl::string_view value(it->second.data(), it->second.size());
    if (!absl::StartsWith(value, kBearer)) {
      return {grpc::StatusCode::UNAUTHENTICATED, "authorization is not 'Bearer TOKEN'"};
    }
    const absl::string_view presented = value.substr(sizeof(kBearer) - 1);
    const NamedToken* match = nullptr;
    for (const NamedToken& t : tokens_) {  // no early exit: every token is compared
      if (ConstantTimeEquals(presented, t.token)) match = &t;
    }
    if (match == nullptr) {
      spdlog::warn("rejected an RPC with an unknown bearer token");
      return {grpc::StatusCode::PERMISSION_DENIED, "bearer token not accepted"};
    }
    // Not consumed: the service reads the header to name this call's client (TokenNames).
    context->AddProperty("anerd_token_name", match->name);
    return grpc::Status::OK;
  }

 private:
  const std::vector<NamedToken> tokens_;
};

absl::Status ParseTokenLine(absl::string_view line, int number, std::set<std::string>* names,
                            std::vector<NamedToken>* out) {
  std::vector<std::string> fields = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  const std::string where = absl::StrCat("token file line ", number, ": ");
  if (fields.size() < 2 || fields.size() > 3 || (fields.size() == 3 && fields[2] != "admin")) {
    return absl::InvalidArgumentError(where + "want 'NAME TOKEN' or 'NAME TOKEN admin'");
  }
  if (fields[1].size() < kMinTokenChars) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "token for '", fields[0], "' is shorter than ", kMinTokenChars));
  }
  if (!names->insert(fields[0]).second) {
    return absl::InvalidArgumentError(where + "duplicate name '" + fields[0] + "'");
  }
  out->push_back({fields[0], fields[1], fields.size() == 3});
  return absl::OkStatus();
}

}  // namespace

std::optional<std::string> TokenNames::NameFor(absl::string_view authorization) const {
  std::optional<NamedToken> token = Find(authorization);
  if (!token.has_value()) return std::nullopt;
  return token->name;
}

std::optional<NamedToken> TokenNames::Find(absl::string_view authorization) const {
  if (!absl::StartsWith(authorization, kBearer)) return std::nullopt;
  const absl::string_view presented = authorization.substr(sizeof(kBearer) - 1);
  const NamedToken* match = nullptr;
  for (const NamedToken& t : tokens_) {  // no early exit, as in the processor
    if (ConstantTimeEquals(presented, t.token)) match = &t;
  }
  if (match == nullptr) return std::nullopt;
  return *match;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<std::vector<NamedToken>> LoadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read --auth-tokens file " + path);
  std::vector<NamedToken> tokens;
  std::set<std::string> names;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    if (absl::Status s = ParseTokenLine(trimmed, number, &names, &tokens); !s.ok()) return s;
  }
  if (tokens.empty()) {
    return absl::FailedPreconditionError("--auth-tokens file " + path +
                                         " holds no tokens (anectl token create NAME --file F)");
  }
  return tokens;
}

std::shared_ptr<grpc::AuthMetadataProcessor> NewTokenAuthProcessor(std::vector<NamedToken> tokens) {
  return std::make_shared<TokenAuthProcessor>(std::move(tokens));
}

}  // namespace anerd::daemon
