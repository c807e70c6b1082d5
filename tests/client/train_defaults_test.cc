// `anectl train start --help` states the engine's own defaults: every "(default V)" it prints for
// a training flag equals the value an unset field takes in training::TrainSpec, so the help
// cannot drift from what the daemon does.
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/anectl/commands.h"
#include "gtest/gtest.h"
#include "server/training/config.h"

namespace anerd::anectl {
namespace {

// flag name -> the text inside its "(default ...)".
std::map<std::string, std::string> HelpDefaults() {
  CommandContext ctx(GlobalOptions{});
  ::testing::internal::CaptureStdout();
  const int code = RunTrain(ctx, {"start", "--help"});
  const std::string help = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0);
  std::map<std::string, std::string> out;
  static const std::regex kLine(R"re(^\s+--([\w-]+)( VALUE)?\s+.*\(default ([^)]+)\)\s*$)re");
  std::istringstream in(help);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, kLine)) out[m[1]] = m[3];
  }
  return out;
}

TEST(TrainDefaultsTest, HelpDefaultsAreTheEnginesDefaults) {
  const std::map<std::string, std::string> help = HelpDefaults();
  const training::TrainSpec spec;
  const std::map<std::string, double> numbers = {{"steps", spec.steps},
                                                 {"lr", spec.lr},
                                                 {"min-lr", spec.min_lr},
                                                 {"warmup", spec.warmup},
                                                 {"accum", spec.accum},
                                                 {"clip", spec.clip},
                                                 {"weight-decay", spec.weight_decay},
                                                 {"beta1", spec.beta1},
                                                 {"beta2", spec.beta2},
                                                 {"eps", spec.eps},
                                                 {"seed", static_cast<double>(spec.seed)}};
  for (const auto& [flag, value] : numbers) {
    auto it = help.find(flag);
    ASSERT_NE(it, help.end()) << "--" << flag << " states no default";
    EXPECT_DOUBLE_EQ(std::stod(it->second), value) << "--" << flag << ": " << it->second;
  }
  const std::map<std::string, std::string> words = {{"schedule", spec.schedule},
                                                    {"loss-scale", spec.loss_scale},
                                                    {"numerics", spec.numerics},
                                                    {"sampling", spec.sampling},
                                                    {"residual-scale", spec.residual_scale}};
  for (const auto& [flag, value] : words) {
    auto it = help.find(flag);
    ASSERT_NE(it, help.end()) << "--" << flag << " states no default";
    EXPECT_EQ(it->second, value) << "--" << flag;
  }
}

}  // namespace
}  // namespace anerd::anectl
