// The priority classes of a device executor's queue (server/engine/device_queue.h orders them).
// Declared here, below the engine, so the sessions' seam to the executors (SubmitTask) can name
// them.
#ifndef ANERD_SERVER_SESSIONS_TASK_CLASS_H_
#define ANERD_SERVER_SESSIONS_TASK_CLASS_H_

namespace anerd::sessions {

enum class TaskClass {
  // A client waits for it and it is short: EvalKernel, the Evaluate RPC, a device generation's
  // build/prefill/reset/release. Runs first, and between a training step's kernels.
  kInteractive = 0,
  // Training steps and the other bulk work that keeps today's FIFO turn with them: compiles,
  // exports, weight copies of a live session (they read the trainer, so never mid-step).
  kTraining = 1,
  // Probes: last, and each keeps the device to itself while it runs.
  kProbe = 2,
};
inline constexpr int kNumTaskClasses = 3;

// "interactive", "training", "probe".
inline const char* TaskClassName(TaskClass c) {
  switch (c) {
    case TaskClass::kInteractive:
      return "interactive";
    case TaskClass::kTraining:
      return "training";
    case TaskClass::kProbe:
      return "probe";
  }
  return "unknown";
}

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_TASK_CLASS_H_
