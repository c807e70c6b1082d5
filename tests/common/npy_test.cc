#include "common/npy.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/fp16.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd {
namespace {

using ::testing::HasSubstr;

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A .npy image with a hand-written header dict (padded to 64, newline-terminated).
std::string MakeNpy(const std::string& dict, const std::string& data, int major = 1) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  for (size_t i = 0; i < prefix - 8; ++i)
    out.push_back(static_cast<char>(header.size() >> (8 * i)));
  return out + header + data;
}

std::string Dict(const std::string& descr, const std::string& shape) {
  return absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': ", shape, ", }");
}

// A fresh directory under the test temp dir, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir() : path_(::testing::TempDir() + "/npy_test.XXXXXX") {
    EXPECT_NE(::mkdtemp(path_.data()), nullptr);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.push_back(e->d_name);
    }
  }
  ::closedir(d);
  return names;
}

struct DtypeCase {
  std::string descr;
  int64_t item_size;
};

TEST(NpyTest, RoundTripsEveryDtypeAndShape) {
  const std::vector<DtypeCase> dtypes = {{"<f2", 2}, {"<f4", 4}, {"<i4", 4}, {"<i2", 2},
                                         {"|i1", 1}, {"|u1", 1}, {"|b1", 1}};
  const std::vector<std::vector<int64_t>> shapes = {{}, {3}, {2, 3}, {0}, {2, 0, 3}, {1, 1, 4, 2}};
  for (const DtypeCase& dtype : dtypes) {
    EXPECT_EQ(NpyItemSize(dtype.descr), dtype.item_size);
    for (const std::vector<int64_t>& shape : shapes) {
      NpyArray array{dtype.descr, shape, ""};
      int64_t count = 1;
      for (int64_t d : shape) count *= d;
      for (int64_t i = 0; i < count * dtype.item_size; ++i) {
        array.data.push_back(static_cast<char>(dtype.descr == "|b1" ? (i % 2) : (i * 37 + 11)));
      }
      const std::string file = SerializeNpy(array);
      const size_t header_end = file.find('\n') + 1;
      EXPECT_EQ(header_end % 64, 0u) << dtype.descr;
      EXPECT_EQ(file.size() - header_end, array.data.size());
      absl::StatusOr<NpyArray> parsed = ParseNpy(file);
      ASSERT_TRUE(parsed.ok()) << parsed.status();
      EXPECT_EQ(parsed->descr, array.descr);
      EXPECT_EQ(parsed->shape, array.shape);
      EXPECT_EQ(parsed->data, array.data);
    }
  }
}

TEST(NpyTest, WritesPythonTupleSyntax) {
  EXPECT_THAT(SerializeNpy({"<f4", {}, std::string(4, '\0')}), HasSubstr("'shape': ()"));
  EXPECT_THAT(SerializeNpy({"<f4", {3}, std::string(12, '\0')}), HasSubstr("'shape': (3,)"));
  EXPECT_THAT(SerializeNpy({"<f4", {2, 1}, std::string(8, '\0')}), HasSubstr("'shape': (2, 1)"));
  EXPECT_EQ(SerializeNpy({"|u1", {1}, "x"}).substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
}

TEST(NpyTest, AcceptsHeaderVariants) {
  const std::string data = RawBytes(std::vector<float>{1, 2, 3});
  for (const std::string& dict :
       {std::string("{'shape': (3,), 'fortran_order': False, 'descr': '<f4'}"),
        std::string("{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(3L,)}"),
        std::string("{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 3 , ) , }")}) {
    absl::StatusOr<NpyArray> parsed = ParseNpy(MakeNpy(dict, data));
    ASSERT_TRUE(parsed.ok()) << dict << ": " << parsed.status();
    EXPECT_EQ(parsed->shape, std::vector<int64_t>{3});
    EXPECT_EQ(parsed->data, data);
  }
  absl::StatusOr<NpyArray> v2 = ParseNpy(MakeNpy(Dict("<f4", "(3,)"), data, /*major=*/2));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->data, data);
}

// Each corrupt input must be rejected with INVALID_ARGUMENT whose message names the problem.
TEST(NpyTest, RejectsCorruptInputsNamingTheProblem) {
  const std::string f4x3 = RawBytes(std::vector<float>{1, 2, 3});
  std::string huge_v2 = MakeNpy(Dict("<f4", "(3,)"), f4x3, 2);
  huge_v2[8] = huge_v2[9] = huge_v2[10] = huge_v2[11] = '\x7f';  // header_len ~ 2 GiB
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "bad magic"},
      {"PK\x03\x04 not numpy at all", "bad magic"},
      {std::string("\x93NUMPY\x01\x00\x10", 9), "truncated in the header length"},
      {MakeNpy(Dict("<f4", "(3,)"), f4x3).substr(0, 40), "truncated in the header"},
      {[&] {
         std::string s = MakeNpy(Dict("<f4", "(3,)"), f4x3);
         s[6] = 3;
         return s;
       }(),
       "version 3.0"},
      {huge_v2, "exceeds the limit"},
      {MakeNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", f4x3), "fortran_order"},
      {MakeNpy(Dict(">f4", "(3,)"), f4x3), "big-endian"},
      {MakeNpy(Dict("|O", "(3,)"), std::string(24, '\0')), "object arrays"},
      {MakeNpy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}", f4x3),
       "structured"},
      {MakeNpy(Dict("<f8", "(3,)"), std::string(24, '\0')), "unsupported dtype '<f8'"},
      {MakeNpy(Dict("<f4", "(-3,)"), f4x3), "negative"},
      {MakeNpy(Dict("<f4", "(3)"), f4x3), "not a tuple"},
      {MakeNpy(Dict("<f4", "(4,)"), f4x3), "data section is 12 bytes"},
      {MakeNpy(Dict("<f4", "(2,)"), f4x3), "data section is 12 bytes"},
      {MakeNpy(Dict("<f4", "(99999999999, 99999999999, 99999999999)"), f4x3), "limit"},
      {MakeNpy(Dict("<f4", "(999999999999999999999,)"), f4x3), "64 bits"},
      {MakeNpy("{'descr': '<f4', 'shape': (3,)}", f4x3), "must have the keys"},
      {MakeNpy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", f4x3),
       "duplicate key"},
      {MakeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", f4x3),
       "unexpected key"},
      {MakeNpy(Dict("<f4", "(3,)") + " junk", f4x3), "trailing"},
      {MakeNpy("['descr', '<f4']", f4x3), "not a dict"},
  };
  for (const auto& [bytes, expected] : cases) {
    absl::StatusOr<NpyArray> parsed = ParseNpy(bytes);
    ASSERT_FALSE(parsed.ok()) << "accepted; expected: " << expected;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << expected;
    EXPECT_THAT(parsed.status().message(), HasSubstr(expected));
  }
}

TEST(NpyTest, EnforcesTheDataLimitBeforeCopying) {
  const std::string file = SerializeNpy({"<f4", {4}, std::string(16, '\0')});
  EXPECT_TRUE(ParseNpy(file, 16).ok());
  absl::Status status = ParseNpy(file, 15).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("15-byte limit"));
  // A scalar needs one element's worth of bytes too.
  EXPECT_FALSE(ParseNpy(SerializeNpy({"<f4", {}, std::string(4, '\0')}), 3).ok());
}

TEST(NpyTest, ValidateRejectsInconsistentArrays) {
  EXPECT_TRUE(ValidateNpyArray({"<i4", {2}, std::string(8, '\0')}).ok());
  EXPECT_THAT(ValidateNpyArray({"<i4", {2}, std::string(7, '\0')}).message(),
              HasSubstr("data is 7 bytes"));
  EXPECT_THAT(ValidateNpyArray({"<i8", {1}, std::string(8, '\0')}).message(),
              HasSubstr("unsupported dtype"));
  EXPECT_THAT(ValidateNpyArray({"<i4", {-1}, ""}).message(), HasSubstr("negative"));
}

TEST(NpyTest, FileWriteIsAtomicAndReadBack) {
  const TempDir temp;
  const std::string& dir = temp.path();
  const std::string path = dir + "/a.npy";
  const NpyArray array{"<i4", {2, 2}, RawBytes(std::vector<int32_t>{1, -2, 3, -4})};
  ASSERT_TRUE(WriteNpyFile(path, array).ok());
  ASSERT_TRUE(WriteNpyFile(path, array).ok());  // overwrite in place
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"a.npy"});
  absl::StatusOr<NpyArray> back = ReadNpyFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->data, array.data);
  EXPECT_EQ(back->shape, array.shape);

  absl::Status bad = WriteNpyFile(dir + "/b.npy", {"<i4", {3}, "x"});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"a.npy"});
  EXPECT_EQ(WriteNpyFile(dir + "/missing/c.npy", array).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"a.npy"});

  EXPECT_EQ(ReadNpyFile(dir + "/nope.npy").status().code(), absl::StatusCode::kNotFound);
  absl::Status too_big = ReadNpyFile(path, 8).status();
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_big.message(), HasSubstr(path));
}

bool PythonHasNumpy() {
  return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

// Files NumPy itself writes, and files we write read back by NumPy.
TEST(NpyTest, InteroperatesWithNumpy) {
  if (::access("/usr/bin/python3", X_OK) != 0 || !PythonHasNumpy()) {
    GTEST_SKIP() << "/usr/bin/python3 with numpy is not available to generate fixtures";
  }
  const TempDir temp;
  const std::string& dir = temp.path();
  const std::string script = absl::StrCat(
      "import numpy as np, os\n"
      "d = '",
      dir,
      "'\n"
      "np.save(os.path.join(d, 'f2.npy'), np.array([[1.5, -2.0, 65504.0]], dtype=np.float16))\n"
      "np.save(os.path.join(d, 'f4.npy'), np.arange(6, dtype=np.float32).reshape(2, 3) / 4)\n"
      "np.save(os.path.join(d, 'i4.npy'), np.array([-7, 0, 2**31 - 1], dtype=np.int32))\n"
      "np.save(os.path.join(d, 'i2.npy'), np.array([-300, 300], dtype=np.int16))\n"
      "np.save(os.path.join(d, 'i1.npy'), np.array([-128, 127], dtype=np.int8))\n"
      "np.save(os.path.join(d, 'u1.npy'), np.array([0, 255], dtype=np.uint8))\n"
      "np.save(os.path.join(d, 'b1.npy'), np.array([True, False, True]))\n"
      "np.save(os.path.join(d, 'scalar.npy'), np.float32(2.5))\n"
      "np.save(os.path.join(d, 'fortran.npy'), np.asfortranarray(np.ones((2, 3), np.float32)))\n"
      "with open(os.path.join(d, 'v2.npy'), 'wb') as f:\n"
      "    np.lib.format.write_array(f, np.array([9, 8], dtype=np.int32), version=(2, 0))\n");
  ASSERT_TRUE(WriteFileAtomically(dir + "/gen.py", script).ok());
  ASSERT_EQ(std::system(("/usr/bin/python3 " + dir + "/gen.py").c_str()), 0);

  auto read = [&](const std::string& name) {
    absl::StatusOr<NpyArray> a = ReadNpyFile(dir + "/" + name);
    EXPECT_TRUE(a.ok()) << name << ": " << a.status();
    return a.ok() ? *a : NpyArray{};
  };
  NpyArray f2 = read("f2.npy");
  EXPECT_EQ(f2.descr, "<f2");
  EXPECT_EQ(f2.shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(f2.data, RawBytes(std::vector<uint16_t>{FloatToHalf(1.5f), FloatToHalf(-2.0f),
                                                    FloatToHalf(65504.0f)}));
  NpyArray f4 = read("f4.npy");
  EXPECT_EQ(f4.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f4.data, RawBytes(std::vector<float>{0, 0.25, 0.5, 0.75, 1, 1.25}));
  EXPECT_EQ(read("i4.npy").data, RawBytes(std::vector<int32_t>{-7, 0, 2147483647}));
  EXPECT_EQ(read("i2.npy").data, RawBytes(std::vector<int16_t>{-300, 300}));
  EXPECT_EQ(read("i1.npy").data, RawBytes(std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(read("u1.npy").data, RawBytes(std::vector<uint8_t>{0, 255}));
  NpyArray b1 = read("b1.npy");
  EXPECT_EQ(b1.descr, "|b1");
  EXPECT_EQ(b1.data, std::string("\x01\x00\x01", 3));
  NpyArray scalar = read("scalar.npy");
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.data, RawBytes(std::vector<float>{2.5f}));
  EXPECT_EQ(read("v2.npy").data, RawBytes(std::vector<int32_t>{9, 8}));
  EXPECT_THAT(ReadNpyFile(dir + "/fortran.npy").status().message(), HasSubstr("fortran_order"));

  // The other direction: NumPy loads what we write and checks every value.
  ASSERT_TRUE(WriteNpyFile(dir + "/ours_f4.npy",
                           {"<f4", {2, 2}, RawBytes(std::vector<float>{1, 2, 3, 4.5})})
                  .ok());
  ASSERT_TRUE(
      WriteNpyFile(dir + "/ours_i1.npy", {"|i1", {3}, RawBytes(std::vector<int8_t>{-1, 0, 5})})
          .ok());
  ASSERT_TRUE(
      WriteNpyFile(dir + "/ours_scalar.npy", {"<i4", {}, RawBytes(std::vector<int32_t>{42})}).ok());
  const std::string check = absl::StrCat(
      "import numpy as np, os, sys\n"
      "d = '",
      dir,
      "'\n"
      "a = np.load(os.path.join(d, 'ours_f4.npy'))\n"
      "b = np.load(os.path.join(d, 'ours_i1.npy'))\n"
      "c = np.load(os.path.join(d, 'ours_scalar.npy'))\n"
      "ok = (a.dtype == np.float32 and a.shape == (2, 2) and a.tolist() == [[1, 2], [3, 4.5]]\n"
      "      and b.dtype == np.int8 and b.tolist() == [-1, 0, 5]\n"
      "      and c.dtype == np.int32 and c.shape == () and int(c) == 42)\n"
      "sys.exit(0 if ok else 1)\n");
  ASSERT_TRUE(WriteFileAtomically(dir + "/check.py", check).ok());
  EXPECT_EQ(std::system(("/usr/bin/python3 " + dir + "/check.py").c_str()), 0);
}

}  // namespace
}  // namespace anerd
