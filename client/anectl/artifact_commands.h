// The artifact verbs shared by `anectl data` and `anectl model` (artifact_commands.cc).
#ifndef ANERD_CLIENT_ANECTL_ARTIFACT_COMMANDS_H_
#define ANERD_CLIENT_ANECTL_ARTIFACT_COMMANDS_H_

#include <string>
#include <vector>

#include "client/anectl/cli.h"

namespace anerd::anectl {

// push, ls, show, rm and pull for command group `group` ("data", "model"); push stores and ls
// lists artifacts of `kind`.
std::vector<Command> ArtifactSubcommands(const std::string& group, const std::string& kind);

// `anectl data tokenize` (data_tokenize.cc).
int DataTokenize(CommandContext& ctx, const std::vector<std::string>& args);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_ARTIFACT_COMMANDS_H_
