// The anectl command table: the one explicit list of top-level commands. Each command group lives
// in its own file and exposes one entry function declared here.
#ifndef ANERD_CLIENT_ANECTL_COMMANDS_H_
#define ANERD_CLIENT_ANECTL_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/anectl/cli.h"

namespace anerd::anectl {

// status_commands.cc
int RunStatus(CommandContext& ctx, const std::vector<std::string>& args);
int RunVersion(CommandContext& ctx, const std::vector<std::string>& args);
// kernel_commands.cc
int RunKernel(CommandContext& ctx, const std::vector<std::string>& args);
// train_commands.cc
int RunTrain(CommandContext& ctx, const std::vector<std::string>& args);
// A session's full id from an id, a unique id prefix or a name (train_commands.cc).
absl::StatusOr<std::string> ResolveSessionId(CommandContext& ctx, const std::string& key);
// eval_commands.cc
int RunEval(CommandContext& ctx, const std::vector<std::string>& args);
// generate_commands.cc
int RunGenerate(CommandContext& ctx, const std::vector<std::string>& args);
// service_commands.cc
int RunService(CommandContext& ctx, const std::vector<std::string>& args);
// mil_commands.cc
int RunMil(CommandContext& ctx, const std::vector<std::string>& args);
// doctor_commands.cc
int RunDoctor(CommandContext& ctx, const std::vector<std::string>& args);
// probe_commands.cc
int RunProbe(CommandContext& ctx, const std::vector<std::string>& args);

// data_commands.cc
int RunData(CommandContext& ctx, const std::vector<std::string>& args);
// artifact_commands.cc
int RunModel(CommandContext& ctx, const std::vector<std::string>& args);
// logs_commands.cc
int RunLogs(CommandContext& ctx, const std::vector<std::string>& args);
// token_commands.cc
int RunToken(CommandContext& ctx, const std::vector<std::string>& args);

// completion_commands.cc: `completion SHELL`, and the hidden `__complete WORD...` its scripts call.
int RunCompletion(CommandContext& ctx, const std::vector<std::string>& args);
int RunComplete(CommandContext& ctx, const std::vector<std::string>& args);

// All top-level commands, in the order `anectl --help` lists them.
const std::vector<Command>& CommandTable();

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_COMMANDS_H_
