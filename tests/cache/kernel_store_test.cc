#include "server/cache/kernel_store.h"

#include <dirent.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::cache {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string MakeTempDir() {
  std::string templ = ::testing::TempDir() + "/kernel_store_test.XXXXXX";
  EXPECT_NE(::mkdtemp(templ.data()), nullptr);
  return templ;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

// Every file under <state>/blobs/*/.
std::vector<std::string> AllBlobFiles(const std::string& state_dir) {
  std::vector<std::string> files;
  for (const std::string& shard : ListDir(state_dir + "/blobs")) {
    for (const std::string& name : ListDir(state_dir + "/blobs/" + shard)) files.push_back(name);
  }
  return files;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class KernelStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<KernelStore>> store = KernelStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::string Blob(absl::string_view bytes) {
    absl::StatusOr<std::string> sha = store_->PutBlob(bytes);
    EXPECT_TRUE(sha.ok()) << sha.status();
    return sha.ok() ? *sha : "";
  }
  // A record whose MIL and weights are stored as blobs.
  KernelRecord MakeRecord(const std::string& id, const std::string& mil,
                          std::vector<std::pair<std::string, std::string>> weight_bytes,
                          int64_t created_ms = 1000) {
    KernelRecord r;
    r.id = id;
    r.name = "label-" + id;
    r.backend = "cpu";
    r.options = "numerics=ane";
    r.mil_sha = Blob(mil);
    r.mil_bytes = mil.size();
    for (auto& [path, bytes] : weight_bytes) {
      r.weights.emplace_back(path, Blob(bytes));
      r.weight_bytes += bytes.size();
    }
    r.signature = "(x: tensor<fp16, [1, 64, 1, 16]>) -> (y: tensor<fp16, [1, 64, 1, 16]>)";
    r.created_ms = created_ms;
    r.last_used_ms = created_ms;
    r.compile_ms = 12.5;
    r.hits = 3;
    return r;
  }

  std::string dir_;
  std::unique_ptr<KernelStore> store_;
};

void ExpectSameRecord(const KernelRecord& a, const KernelRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.backend, b.backend);
  EXPECT_EQ(a.options, b.options);
  EXPECT_EQ(a.mil_sha, b.mil_sha);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.mil_bytes, b.mil_bytes);
  EXPECT_EQ(a.weight_bytes, b.weight_bytes);
  EXPECT_EQ(a.signature, b.signature);
  EXPECT_EQ(a.created_ms, b.created_ms);
  EXPECT_EQ(a.last_used_ms, b.last_used_ms);
  EXPECT_EQ(a.compile_ms, b.compile_ms);
  EXPECT_EQ(a.hits, b.hits);
}

TEST_F(KernelStoreTest, RoundTripsRecordsAndBlobs) {
  KernelRecord r =
      MakeRecord("k1", "program(1.3)\n",
                 {{"@model_path/weights/w2.bin", "BBBB"}, {"@model_path/weights/w1.bin", "AAA"}});
  ASSERT_TRUE(store_->Put(r).ok());
  absl::StatusOr<KernelRecord> got = store_->Get("k1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->weights, ElementsAre(Pair("@model_path/weights/w1.bin", Sha256Hex("AAA")),
                                        Pair("@model_path/weights/w2.bin", Sha256Hex("BBBB"))));
  std::sort(r.weights.begin(), r.weights.end());
  ExpectSameRecord(*got, r);
  EXPECT_EQ(r.mil_sha, Sha256Hex("program(1.3)\n"));
  EXPECT_EQ(store_->BlobPath(r.mil_sha),
            absl::StrCat(dir_, "/blobs/", r.mil_sha.substr(0, 2), "/", r.mil_sha));
  EXPECT_TRUE(FileExists(store_->BlobPath(r.mil_sha)));
  EXPECT_EQ(*store_->GetBlob(r.mil_sha), "program(1.3)\n");
  EXPECT_EQ(*store_->GetBlob(Sha256Hex("BBBB")), "BBBB");
  EXPECT_EQ(store_->Count(), 1);
  EXPECT_EQ(*store_->PutBlob("AAA"), Sha256Hex("AAA"));  // idempotent
  absl::Status missing = store_->Get("nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("nope"));
}

TEST_F(KernelStoreTest, PersistsAcrossOpen) {
  const KernelRecord a = MakeRecord("a", "mil a", {{"w", "weights"}}, 1000);
  const KernelRecord b = MakeRecord("b", "mil b", {}, 2000);
  ASSERT_TRUE(store_->Put(a).ok());
  ASSERT_TRUE(store_->Put(b).ok());
  ASSERT_TRUE(store_->RecordUse("a", 5, 3000, 7.0).ok());
  Reopen();
  EXPECT_EQ(store_->Count(), 2);
  const std::vector<KernelRecord> list = store_->List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, "b");  // newest first
  ExpectSameRecord(list[0], b);
  EXPECT_EQ(list[1].id, "a");
  EXPECT_EQ(list[1].hits, a.hits + 5);
  EXPECT_EQ(list[1].last_used_ms, 3000);
  EXPECT_EQ(list[1].compile_ms, 7.0);
  EXPECT_EQ(list[1].weights, a.weights);
  EXPECT_EQ(*store_->GetBlob(a.weights[0].second), "weights");
}

TEST_F(KernelStoreTest, RecordUseAccumulatesAndNeverMovesLastUsedBack) {
  ASSERT_TRUE(store_->Put(MakeRecord("k", "mil", {}, 1000)).ok());
  ASSERT_TRUE(store_->RecordUse("k", 2, 5000, -1).ok());
  ASSERT_TRUE(store_->RecordUse("k", 1, 4000, -1).ok());
  KernelRecord r = *store_->Get("k");
  EXPECT_EQ(r.hits, 6u);
  EXPECT_EQ(r.last_used_ms, 5000);
  EXPECT_EQ(r.compile_ms, 12.5);  // kept
  ASSERT_TRUE(store_->RecordUse("k", 0, 6000, 0.25).ok());
  EXPECT_EQ(store_->Get("k")->compile_ms, 0.25);
  absl::Status missing = store_->RecordUse("ghost", 1, 1, -1);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("ghost"));
}

TEST_F(KernelStoreTest, CorruptBlobIsDataLossAndPutBlobRepairsIt) {
  const std::string sha = Blob("original bytes");
  const std::string path = store_->BlobPath(sha);
  ASSERT_TRUE(WriteFileAtomically(path, "originaL bytes").ok());
  absl::Status corrupt = store_->GetBlob(sha).status();
  EXPECT_EQ(corrupt.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(corrupt.message(), HasSubstr(path));
  EXPECT_EQ(*store_->PutBlob("original bytes"), sha);
  EXPECT_EQ(*store_->GetBlob(sha), "original bytes");
}

TEST_F(KernelStoreTest, MissingOrMalformedBlob) {
  absl::Status missing = store_->GetBlob(Sha256Hex("never stored")).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr(Sha256Hex("never stored")));
  EXPECT_EQ(store_->GetBlob("../../anerd.db").status().code(), absl::StatusCode::kInvalidArgument);
  const std::string sha = Blob("soon gone");
  ASSERT_EQ(::unlink(store_->BlobPath(sha).c_str()), 0);
  EXPECT_EQ(store_->GetBlob(sha).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KernelStoreTest, PutValidatesRecordsAndTheirBlobs) {
  KernelRecord r = MakeRecord("k", "mil", {{"w", "x"}});
  KernelRecord bad = r;
  bad.id = "";
  EXPECT_EQ(store_->Put(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = r;
  bad.mil_sha = "zz";
  EXPECT_EQ(store_->Put(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = r;
  bad.weights.push_back(r.weights[0]);
  EXPECT_THAT(store_->Put(bad).message(), HasSubstr("duplicated weight path"));
  bad = r;
  bad.weights[0].second = Sha256Hex("not stored");
  absl::Status absent = store_->Put(bad);
  EXPECT_EQ(absent.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(absent.message(), HasSubstr(Sha256Hex("not stored")));
  EXPECT_EQ(store_->Count(), 0);
}

TEST_F(KernelStoreTest, DeleteCollectsUnsharedBlobsAndKeepsSharedOnes) {
  const KernelRecord k1 = MakeRecord("k1", "mil one", {{"shared", "SHARED"}, {"own", "ONLY1"}});
  const KernelRecord k2 = MakeRecord("k2", "mil two", {{"shared", "SHARED"}});
  ASSERT_TRUE(store_->Put(k1).ok());
  ASSERT_TRUE(store_->Put(k2).ok());
  ASSERT_TRUE(store_->Delete("k1").ok());
  EXPECT_EQ(store_->Get("k1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(FileExists(store_->BlobPath(k1.mil_sha)));
  EXPECT_FALSE(FileExists(store_->BlobPath(Sha256Hex("ONLY1"))));
  EXPECT_EQ(*store_->GetBlob(Sha256Hex("SHARED")), "SHARED");
  EXPECT_EQ(*store_->GetBlob(k2.mil_sha), "mil two");
  absl::Status again = store_->Delete("k1");
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(again.message(), HasSubstr("k1"));
  ASSERT_TRUE(store_->Delete("k2").ok());
  EXPECT_THAT(AllBlobFiles(dir_), ::testing::IsEmpty());
  EXPECT_EQ(store_->Count(), 0);
}

TEST_F(KernelStoreTest, ReplacingARecordCollectsItsOldBlobs) {
  ASSERT_TRUE(store_->Put(MakeRecord("k", "old mil", {{"w", "old w"}})).ok());
  ASSERT_TRUE(store_->Put(MakeRecord("k", "new mil", {{"w", "new w"}})).ok());
  EXPECT_EQ(store_->Count(), 1);
  EXPECT_FALSE(store_->HasBlob(Sha256Hex("old mil")));
  EXPECT_FALSE(store_->HasBlob(Sha256Hex("old w")));
  EXPECT_EQ(store_->Get("k")->weights[0].second, Sha256Hex("new w"));
}

TEST_F(KernelStoreTest, BlobsPutForAPendingKernelSurviveCollection) {
  ASSERT_TRUE(store_->Put(MakeRecord("old", "mil", {{"w", "reused"}})).ok());
  const std::string pending = Blob("reused");  // about to be referenced by a new kernel
  ASSERT_TRUE(store_->Delete("old").ok());
  EXPECT_TRUE(store_->HasBlob(pending));
  EXPECT_EQ(*store_->CollectGarbage(), 0);  // "mil" was collected by Delete already
  EXPECT_TRUE(store_->HasBlob(pending));

  // Pins do not survive a restart: the orphan goes at the next collection.
  Reopen();
  EXPECT_EQ(*store_->CollectGarbage(), 1);
  EXPECT_FALSE(store_->HasBlob(pending));
}

TEST_F(KernelStoreTest, ConcurrentPutBlobOfTheSameBytes) {
  const std::string bytes(256 * 1024, 'z');
  std::vector<std::string> shas(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::string> sha = store_->PutBlob(bytes);
      shas[i] = sha.ok() ? *sha : sha.status().ToString();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& sha : shas) EXPECT_EQ(sha, Sha256Hex(bytes));
  EXPECT_EQ(*store_->GetBlob(shas[0]), bytes);
  EXPECT_THAT(AllBlobFiles(dir_), ElementsAre(Sha256Hex(bytes)));  // no temporaries
}

TEST_F(KernelStoreTest, WritesLeaveNoTemporariesAndOpenSweepsStaleOnes) {
  for (int i = 0; i < 20; ++i) Blob(absl::StrCat("blob ", i));
  std::vector<std::string> files = AllBlobFiles(dir_);
  EXPECT_EQ(files.size(), 20u);
  for (const std::string& name : files) EXPECT_TRUE(IsSha256Hex(name)) << name;

  const std::string sha = Sha256Hex("blob 0");
  const std::string stale = absl::StrCat(dir_, "/blobs/", sha.substr(0, 2), "/.", sha, ".tmp.1.0");
  ASSERT_TRUE(WriteFileAtomically(stale, "half written").ok());
  Reopen();
  EXPECT_FALSE(FileExists(stale));
  EXPECT_EQ(AllBlobFiles(dir_).size(), 20u);
}

TEST_F(KernelStoreTest, ConcurrentRecordWritersAndReaders) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string id = absl::StrCat("t", t, "-", i);
        KernelRecord r;
        r.id = id;
        r.mil_sha = *store_->PutBlob(absl::StrCat("mil ", id));
        EXPECT_TRUE(store_->Put(r).ok());
        EXPECT_TRUE(store_->RecordUse(id, 1, i, -1).ok());
        EXPECT_TRUE(store_->Get(id).ok());
        store_->List();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(store_->Count(), 40);
  EXPECT_EQ(store_->Get("t3-9")->hits, 1u);
}

TEST_F(KernelStoreTest, RefusesADatabaseFromANewerSchema) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/anerd.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99 WHERE component = 'store'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  absl::Status status = KernelStore::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("99"));
}

// A record read back from a damaged database may hold any text as a blob hash; deleting it must
// never unlink a file outside the blob directory (found by tests/fuzz/state_rows_fuzz).
TEST_F(KernelStoreTest, DeletingARecordWithAPathAsItsBlobHashTouchesNoOtherFile) {
  const std::string victim =
      dir_ + "/../" + std::filesystem::path(dir_).filename().string() + "-victim";
  std::ofstream(victim) << "keep me";
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/anerd.db").c_str(), &raw), SQLITE_OK);
  const std::string bad_sha = "../" + std::filesystem::path(victim).filename().string();
  const std::string sql =
      "INSERT INTO kernels VALUES ('k', '', 'cpu', '', '" + bad_sha +
      "', 1, 0, '', 1, 1, 0, 0); INSERT INTO kernel_weights VALUES ('k', 'w.bin', '" + bad_sha +
      "');";
  ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_TRUE(store_->Delete("k").ok());
  EXPECT_TRUE(std::filesystem::exists(victim)) << "a blob hash from the database was a path";
  std::filesystem::remove(victim);
}

}  // namespace
}  // namespace anerd::cache
