#include "client/anectl/commands.h"

namespace anerd::anectl {

const std::vector<Command>& CommandTable() {
  static const auto* table = new std::vector<Command>{
      {"status", "show the daemon's health, backends and counters", RunStatus},
      {"version", "print anectl's and the daemon's versions", RunVersion},
      {"kernel", "compile, run, list and delete MIL kernels", RunKernel},
      {"probe", "measure the hardware: peak, sram, latency, int8, qos; list and compare results",
       RunProbe},
      {"train", "start, watch, stop, resume and export training sessions", RunTrain},
      {"eval", "loss and perplexity of a session's checkpoint or a model on data", RunEval},
      {"generate", "generate text from a session's weights or a model file", RunGenerate},
      {"service", "install, start, stop or remove the launchd/systemd service", RunService},
      {"mil", "check or format MIL programs offline (no daemon)", RunMil},
      {"doctor", "check the OS, daemon, ANE and a canary kernel on every backend", RunDoctor},
      {"data", "push, list, pull and delete datasets on the daemon; write a synthetic corpus",
       RunData},
      {"model", "push, list, pull and delete models on the daemon", RunModel},
      {"logs", "print (or follow) the daemon's log file", RunLogs},
      {"token", "create, list and revoke bearer tokens for remote (TCP) clients", RunToken},
      {"completion", "print a bash, zsh or fish completion script", RunCompletion},
  };
  return *table;
}

}  // namespace anerd::anectl
