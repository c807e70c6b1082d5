// The artifact store on its own: what a commit makes visible, what a refused or abandoned upload
// leaves behind (nothing), what a crash between the blob and its row leaves (swept at the next
// open), ownership and quotas.
#include "server/artifacts/artifact_store.h"

#include <dirent.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_harness.h"

namespace anerd::artifacts {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Every file below `dir`, recursively, as paths relative to it.
std::vector<std::string> FilesUnder(const std::string& dir, const std::string& prefix = "") {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    std::vector<std::string> sub = FilesUnder(path, prefix + name + "/");
    if (sub.empty() && e->d_type != DT_DIR) out.push_back(prefix + name);
    out.insert(out.end(), sub.begin(), sub.end());
  }
  ::closedir(d);
  return out;
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    artifacts_.reset();
    store_.reset();
    absl::StatusOr<std::unique_ptr<store::Store>> s = store::Store::Open(dir_.path() + "/state");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    absl::StatusOr<std::unique_ptr<ArtifactStore>> a = ArtifactStore::Open(store_.get());
    ASSERT_TRUE(a.ok()) << a.status();
    artifacts_ = *std::move(a);
  }
  std::string BlobRoot() const { return dir_.path() + "/state/blobs/artifacts"; }

  absl::StatusOr<ArtifactRecord> Put(const std::string& bytes, const std::string& owner,
                                     ArtifactQuota quota = {}, std::string sha = "") {
    absl::StatusOr<std::unique_ptr<PendingArtifact>> p = artifacts_->Begin();
    if (!p.ok()) return p.status();
    // Two appends: the digest must not depend on how the bytes were split.
    if (absl::Status s = (*p)->Append(bytes.substr(0, bytes.size() / 2)); !s.ok()) return s;
    if (absl::Status s = (*p)->Append(bytes.substr(bytes.size() / 2)); !s.ok()) return s;
    ArtifactStore::NewArtifact meta{"dataset", "d.txt", sha.empty() ? Sha256Hex(bytes) : sha, owner,
                                    quota};
    return artifacts_->Commit(*std::move(p), meta);
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
};

TEST_F(ArtifactStoreTest, CommitStoresTheBytesUnderTheirDigest) {
  const std::string bytes = "hello artifacts\n";
  absl::StatusOr<ArtifactRecord> r = Put(bytes, "token:alice");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, Sha256Hex(bytes));
  EXPECT_EQ(r->size, bytes.size());
  EXPECT_EQ(r->NameFor("token:alice"), "d.txt");
  std::ifstream in(artifacts_->BlobPath(r->id), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), bytes);
  EXPECT_THAT(FilesUnder(BlobRoot()), ElementsAre(r->id.substr(0, 2) + "/" + r->id));
  Reopen();
  absl::StatusOr<ArtifactRecord> again = artifacts_->Get(r->id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->OwnedBy("token:alice"));
}

TEST_F(ArtifactStoreTest, DigestMismatchStoresNothing) {
  absl::StatusOr<ArtifactRecord> r = Put("the real bytes", "token:alice", {}, Sha256Hex("other"));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("sha256"));
  EXPECT_THAT(*artifacts_->List(), IsEmpty());
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty());
}

TEST_F(ArtifactStoreTest, AnAbandonedUploadLeavesNoFile) {
  {
    absl::StatusOr<std::unique_ptr<PendingArtifact>> p = artifacts_->Begin();
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE((*p)->Append("half of it").ok());
    EXPECT_EQ(FilesUnder(BlobRoot()).size(), 1u) << "the temporary exists while receiving";
  }
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty());
  EXPECT_THAT(*artifacts_->List(), IsEmpty());
}

TEST_F(ArtifactStoreTest, OpenRemovesWhatACrashLeft) {
  // A temporary of an upload cut by a kill, and a blob renamed into place whose row never landed.
  std::ofstream(BlobRoot() + "/upload.tmp.999.0") << "partial";
  const std::string orphan = Sha256Hex("orphan");
  ASSERT_TRUE(artifacts_->blobs().Write(orphan, "orphan").ok());
  absl::StatusOr<ArtifactRecord> kept = Put("kept", "token:alice");
  ASSERT_TRUE(kept.ok());
  Reopen();
  EXPECT_THAT(FilesUnder(BlobRoot()), ElementsAre(kept->id.substr(0, 2) + "/" + kept->id));
}

TEST_F(ArtifactStoreTest, OwnersReleaseAndTheLastTakesTheBytes) {
  absl::StatusOr<ArtifactRecord> a = Put("shared bytes", "token:alice");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(Put("shared bytes", "token:bob").ok());
  EXPECT_EQ(artifacts_->Release(a->id, "token:carol").code(), absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(artifacts_->Release(a->id, "token:alice").ok());
  absl::StatusOr<ArtifactRecord> left = artifacts_->Get(a->id);
  ASSERT_TRUE(left.ok());
  EXPECT_FALSE(left->OwnedBy("token:alice"));
  EXPECT_TRUE(artifacts_->blobs().Has(a->id));
  ASSERT_TRUE(artifacts_->Release(a->id, "token:bob").ok());
  EXPECT_EQ(artifacts_->Get(a->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty());
}

TEST_F(ArtifactStoreTest, QuotasCountEachOwnersArtifactsAndBytes) {
  const ArtifactQuota two{2, 0};
  ASSERT_TRUE(Put("one", "token:alice", two).ok());
  ASSERT_TRUE(Put("two", "token:alice", two).ok());
  ASSERT_TRUE(Put("two", "token:alice", two).ok()) << "an artifact alice owns does not count twice";
  absl::StatusOr<ArtifactRecord> third = Put("three", "token:alice", two);
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("--quota-artifacts"));
  EXPECT_FALSE(artifacts_->blobs().Has(Sha256Hex("three")));
  ASSERT_TRUE(Put("three", "token:bob", two).ok()) << "bob is independent";
  absl::StatusOr<ArtifactRecord> big = Put(std::string(100, 'x'), "token:carol", {0, 64});
  ASSERT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.status().message(), HasSubstr("--quota-artifact-bytes"));
}

}  // namespace
}  // namespace anerd::artifacts
