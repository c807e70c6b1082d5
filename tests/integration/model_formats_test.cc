// Model formats through the real daemon and anectl (issue 19 items 4, 5): `--init` of a llama2.c
// file or a Hugging Face directory needs no --config (and a disagreeing --config is refused naming
// the field), `train export --format hf|llama2c|native`, and the llama2.c refusal of shapes the
// format cannot hold.
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/session_fixture.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using Json = nlohmann::json;

class ModelFormatsTest : public testing::SessionFixture {};

constexpr char kSmall[] = "dim=32,hidden=64,layers=1,heads=2,kv_heads=1,vocab=256,seq=32";

TEST_F(ModelFormatsTest, InitTakesTheShapeFromTheFileAndExportsEveryFormat) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string a = Start(d, {"--config", kSmall, "--steps", "2", "--seed", "5"});
  ASSERT_FALSE(a.empty());
  Events(d, a);
  const std::string bin = dir_.path() + "/small.bin", hf = dir_.path() + "/small-hf",
                    ckpt = dir_.path() + "/small.anerd";
  RunResult e1 = d.Anectl({"train", "export", a, bin});
  ASSERT_EQ(e1.exit_code, 0) << e1.err;
  RunResult e2 = d.Anectl({"train", "export", a, "--format", "hf", hf});
  ASSERT_EQ(e2.exit_code, 0) << e2.err;
  RunResult e3 = d.Anectl({"train", "export", a, "--format", "native", ckpt});
  ASSERT_EQ(e3.exit_code, 0) << e3.err;
  EXPECT_GT(std::filesystem::file_size(bin), 28u);
  EXPECT_GT(std::filesystem::file_size(ckpt), 0u);
  EXPECT_GT(std::filesystem::file_size(hf + "/model.safetensors"), 8u);
  std::ifstream config(hf + "/config.json");
  const Json c = Json::parse(config);
  EXPECT_EQ(c["hidden_size"], 32);
  EXPECT_EQ(c["num_key_value_heads"], 1);
  EXPECT_EQ(c["architectures"][0], "LlamaForCausalLM");

  // --init with neither --model nor --config: the file's shape (before, tiny's was assumed and the
  // start failed with "init model ... has dim 32 but the spec's model has 64").
  for (const std::string& init : {bin, hf, hf + "/config.json"}) {
    SCOPED_TRACE(init);
    const std::string b = Start(d, {"--init", init, "--steps", "1"});
    ASSERT_FALSE(b.empty());
    EXPECT_THAT(Show(d, b)["spec"]["config"].get<std::string>(), HasSubstr("dim=32"));
    std::vector<Json> events = Events(d, b);
    EXPECT_EQ(events.back()["state"], "completed") << events.back().dump();
  }
  // --config overrides seq; a key that disagrees with the file is refused naming it.
  const std::string s = Start(d, {"--init", bin, "--config", "seq=16", "--steps", "1"});
  ASSERT_FALSE(s.empty());
  EXPECT_THAT(Show(d, s)["spec"]["config"].get<std::string>(), HasSubstr("seq=16"));
  RunResult bad = d.Anectl(
      {"train", "start", "--data", data_, "--init", bin, "--config", "hidden=96", "--steps", "1"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("hidden"));
  EXPECT_THAT(bad.err, HasSubstr(bin));
}

TEST_F(ModelFormatsTest, Llama2cExportRefusesAShapeItCannotHold) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  // head_dim 32 with dim 64 and 4 heads: the llama2.c header has no head_dim.
  const std::string id = Start(d, {"--config", "head_dim=32", "--steps", "1"});
  ASSERT_FALSE(id.empty());
  Events(d, id);
  const std::string bin = dir_.path() + "/x.bin";
  RunResult r = d.Anectl({"train", "export", id, bin});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("head_dim"));
  EXPECT_FALSE(std::filesystem::exists(bin));
  EXPECT_FALSE(std::filesystem::exists(bin + ".part"));
  RunResult hf = d.Anectl({"train", "export", id, "--format", "hf", dir_.path() + "/x-hf"});
  EXPECT_EQ(hf.exit_code, 0) << hf.err;
  RunResult unknown = d.Anectl({"train", "export", id, "--format", "onnx", bin});
  EXPECT_NE(unknown.exit_code, 0);
}

}  // namespace
}  // namespace anerd
