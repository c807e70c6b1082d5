// The worker side of the process model (docs/ARCHITECTURE.md): `anerd --worker=BACKEND` runs
// RunWorker, which creates the one backend, announces it (Hello) and then serves compile and run
// requests from the front process over the channel until the front closes it or asks it to stop.
//
// The worker owns the device and the compiled programs; the front owns everything persistent.
// Tensors and weights are read from and written to the shared arena the front passes
// (channel.h); every offset and size the front sends is checked against the arena before use.
// Messages are wire.h's; a heartbeat thread (process.h) increments a counter in a shared page
// every 100 ms so the front can tell a stopped process from a busy one.
//
// Test-only ops (op_registry.h): with `test_ops`, a program containing `anerd_test_abort` aborts
// the worker when run and one containing `anerd_test_hang` never returns — the crash and hang
// paths of the front's supervision are tested with them.
#ifndef ANERD_SERVER_WORKER_WORKER_HOST_H_
#define ANERD_SERVER_WORKER_WORKER_HOST_H_

#include <cstdint>
#include <string>

#include "server/backend/registry.h"

namespace anerd::worker {

struct WorkerHostOptions {
  std::string backend;     // registry name
  int channel_fd = -1;     // connected socket to the front (owned)
  int heartbeat_fd = -1;   // shared page with the heartbeat counter (owned); -1 = none
  int64_t parent_pid = 0;  // exit when the parent changes (the front died); 0 = do not check
  backend::RegistryOptions registry;  // compile budget
  bool test_ops = false;
};

// Serves until the channel closes. Returns the process exit code (0 after an orderly stop).
int RunWorker(const WorkerHostOptions& options);

}  // namespace anerd::worker

#endif  // ANERD_SERVER_WORKER_WORKER_HOST_H_
