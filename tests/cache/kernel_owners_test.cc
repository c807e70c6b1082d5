// KernelStore ownership (schema 2): owners per kernel, counting, release semantics (the record and
// its blobs go with the last owner), REPLACE keeping owners, and the 1 -> 2 migration.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/kernel_store.h"
#include "server/store/migrations.h"
#include "server/store/sqlite.h"

namespace anerd::cache {
namespace {

using store::SqliteDb;
using store::Statement;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class KernelOwnersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/kernel_owners_test.XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<KernelStore>> store = KernelStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  // A record whose MIL blob holds `text`.
  KernelRecord Put(const std::string& id, const std::string& text) {
    KernelRecord r;
    r.id = id;
    r.backend = "cpu";
    absl::StatusOr<std::string> sha = store_->PutBlob(text);
    EXPECT_TRUE(sha.ok());
    r.mil_sha = *sha;
    EXPECT_TRUE(store_->Put(r).ok());
    return r;
  }
  bool HasFile(const std::string& sha) {
    struct stat st;
    return ::stat(store_->BlobPath(sha).c_str(), &st) == 0;
  }

  std::string dir_;
  std::unique_ptr<KernelStore> store_;
};

TEST_F(KernelOwnersTest, LastOwnerReleaseRemovesRecordAndBlob) {
  const KernelRecord k = Put("k1", "program one");
  ASSERT_TRUE(store_->AddOwner("k1", "token:alice").ok());
  ASSERT_TRUE(store_->AddOwner("k1", "token:alice").ok());  // idempotent
  ASSERT_TRUE(store_->AddOwner("k1", "uid:501").ok());
  EXPECT_EQ(store_->AddOwner("nope", "uid:501").code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(*store_->Owners("k1"), ElementsAre("token:alice", "uid:501"));
  EXPECT_EQ(*store_->CountOwned("token:alice"), 1);
  EXPECT_EQ(*store_->CountOwned("token:bob"), 0);

  absl::StatusOr<bool> stranger = store_->Release("k1", "token:bob");
  EXPECT_EQ(stranger.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(stranger.status().message(), HasSubstr("k1"));

  ASSERT_TRUE(store_->Put(k).ok()) << "replacing the record";
  EXPECT_THAT(*store_->Owners("k1"), ElementsAre("token:alice", "uid:501")) << "owners survive";

  absl::StatusOr<bool> first = store_->Release("k1", "token:alice");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(*first);
  EXPECT_TRUE(store_->Get("k1").ok());
  EXPECT_TRUE(HasFile(k.mil_sha));
  EXPECT_EQ(*store_->CountOwned("token:alice"), 0);

  absl::StatusOr<bool> last = store_->Release("k1", "uid:501");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_TRUE(*last);
  EXPECT_EQ(store_->Get("k1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(HasFile(k.mil_sha));
  EXPECT_THAT(*store_->Owners("k1"), IsEmpty());
  EXPECT_EQ(store_->Release("k1", "uid:501").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KernelOwnersTest, OwnedIdsListsWhatEachOwnerHolds) {
  Put("k1", "program one");
  Put("k2", "program two");
  Put("k3", "program three");
  ASSERT_TRUE(store_->AddOwner("k2", "token:alice").ok());
  ASSERT_TRUE(store_->AddOwner("k1", "token:alice").ok());
  ASSERT_TRUE(store_->AddOwner("k1", "token:bob").ok());
  EXPECT_THAT(*store_->OwnedIds("token:alice"), ElementsAre("k1", "k2"));
  EXPECT_THAT(*store_->OwnedIds("token:bob"), ElementsAre("k1"));
  EXPECT_THAT(*store_->OwnedIds("token:carol"), IsEmpty());
  ASSERT_TRUE(*store_->Release("k1", "token:alice") == false);
  EXPECT_THAT(*store_->OwnedIds("token:alice"), ElementsAre("k2"));
}

TEST_F(KernelOwnersTest, UnownedKernelsAreReleasedByAnyoneAndDeleteDropsOwners) {
  Put("legacy", "old program");
  absl::StatusOr<bool> released = store_->Release("legacy", "token:alice");
  ASSERT_TRUE(released.ok());
  EXPECT_TRUE(*released);
  Put("k2", "program two");
  ASSERT_TRUE(store_->AddOwner("k2", "token:alice").ok());
  ASSERT_TRUE(store_->Delete("k2").ok());
  EXPECT_EQ(*store_->CountOwned("token:alice"), 0);
}

// Issue 17: a compiled kernel's record and its owner land in one transaction. Before, the record
// was written and then the owner in a second statement; when the second failed the kernel stayed
// behind without its owner (visible to nobody, counted against no quota).
TEST_F(KernelOwnersTest, CommitStoresTheRecordAndItsOwnerTogetherOrNeither) {
  {  // Make every owner insert fail, from another connection.
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_ + "/anerd.db", 1000);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec("CREATE TRIGGER refuse_owners BEFORE INSERT ON kernel_owners "
                           "BEGIN SELECT RAISE(ABORT, 'owners refused'); END;")
                    .ok());
  }
  const std::string mil = "program committed";
  KernelRecord r;
  r.id = "k-commit";
  r.backend = "cpu";
  r.mil_sha = Sha256Hex(mil);
  absl::Status failed = store_->Commit(r, {mil}, "token:alice");
  EXPECT_FALSE(failed.ok());
  EXPECT_THAT(failed.message(), HasSubstr("owners refused"));
  EXPECT_EQ(store_->Get(r.id).status().code(), absl::StatusCode::kNotFound)
      << "the record must not land without its owner";
  EXPECT_FALSE(HasFile(r.mil_sha)) << "the blob written for it is not kept";
  {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_ + "/anerd.db", 1000);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("DROP TRIGGER refuse_owners").ok());
  }
  ASSERT_TRUE(store_->Commit(r, {mil}, "token:alice").ok());
  EXPECT_THAT(*store_->Owners(r.id), ElementsAre("token:alice"));
  EXPECT_EQ(*store_->GetBlob(r.mil_sha), mil);
}

TEST_F(KernelOwnersTest, MigratesSchemaOneKeepingKernelsUnowned) {
  Put("k1", "program one");
  ASSERT_TRUE(store_->AddOwner("k1", "token:alice").ok());
  store_.reset();
  {  // Turn the database back into the kernel schema 1 of the code before issue 17: no owners
     // table, no store version, the old per-component row.
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_ + "/anerd.db", 1000);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec("DROP TABLE kernel_owners; DELETE FROM schema_version; "
                           "INSERT INTO schema_version VALUES ('kernels', 1);")
                    .ok());
  }
  Reopen();
  EXPECT_TRUE(store_->Get("k1").ok());
  EXPECT_THAT(*store_->Owners("k1"), IsEmpty());
  ASSERT_TRUE(store_->AddOwner("k1", "uid:7").ok());
  EXPECT_EQ(*store_->CountOwned("uid:7"), 1);
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_ + "/anerd.db", 1000);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*store::SchemaVersion(**db), store::kSchemaVersion);
}

}  // namespace
}  // namespace anerd::cache
