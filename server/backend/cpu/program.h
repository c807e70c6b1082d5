// CpuProgram: a planned program (see planner.h) and its executor. Internal to the CPU backend.
// Thread-safety: Run serialises callers with a mutex; everything else is immutable after planning.
#ifndef ANERD_SERVER_BACKEND_CPU_PROGRAM_H_
#define ANERD_SERVER_BACKEND_CPU_PROGRAM_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/backend.h"
#include "server/backend/cpu/view.h"

namespace anerd::backend::cpu {

// What a step sees at run time: the base pointer of every buffer, and shared scratch memory.
struct StepContext {
  float* const* bufs = nullptr;
  float* scratch = nullptr;
  const float* Ptr(const View& v) const { return bufs[v.buf] + v.offset; }
  float* MutablePtr(const View& v) const { return bufs[v.buf] + v.offset; }
};

// One executable step (an op, a fused elementwise chain, or a copy).
struct Step {
  std::string op;  // for errors and profiles
  int line = 0;
  std::vector<int> reads, writes;  // buffer ids, for liveness
  int64_t scratch_floats = 0;
  std::function<absl::Status(const StepContext&)> fn;  // null = removed (moved by fusion)
  std::string note;  // what a planner pass made of it, for plan dumps (passes.h); may be empty
};

struct BufferSpec {
  int64_t floats = 0;
  std::shared_ptr<std::vector<float>> constant;  // set for constants (never reused)
  // When >= 0, this buffer has no memory of its own: it lives at element `alias_offset` of buffer
  // `alias_of` (which stays allocated for the union of both lifetimes). Used to let a producer
  // write its result straight into its region of a concat output.
  int alias_of = -1;
  int64_t alias_offset = 0;
};

struct IoBinding {
  TensorSignature sig;
  View view;
};

struct PlannedProgram {
  std::vector<BufferSpec> buffers;
  std::vector<Step> steps;
  std::vector<IoBinding> inputs, outputs;
  CompileOptions options;
};

class CpuProgram : public CompiledProgram {
 public:
  // Assigns physical memory to buffers by liveness, then allocates it only when the program's
  // memory (the arena, scratch and decoded constants; memory_bytes()) is at most
  // `max_memory_bytes` (0 = unlimited). RESOURCE_EXHAUSTED naming both sizes otherwise, before
  // anything is allocated.
  static absl::StatusOr<std::unique_ptr<CpuProgram>> Create(PlannedProgram plan,
                                                            uint64_t max_memory_bytes);
  // As Create without a limit.
  explicit CpuProgram(PlannedProgram plan);
  const std::vector<TensorSignature>& inputs() const override { return input_sigs_; }
  const std::vector<TensorSignature>& outputs() const override { return output_sigs_; }
  absl::StatusOr<RunResult> Run(const std::vector<NamedTensor>& inputs) override;
  // Checks `stop` between steps: a non-OK status ends the run with it.
  absl::StatusOr<RunResult> RunStoppable(const std::vector<NamedTensor>& inputs,
                                         const StopCheck& stop) override;
  uint64_t memory_bytes() const override { return memory_bytes_; }

  // Planning statistics (tests, benchmarks).
  int num_steps() const;
  int64_t arena_floats() const { return arena_floats_; }

 private:
  struct Unallocated {};
  CpuProgram(PlannedProgram plan, Unallocated);
  // Decides which slot of the arena each buffer lives in (no allocation); sets memory_bytes_.
  void LayOutMemory();
  // Allocates the slots laid out by LayOutMemory and points every buffer into them.
  void AllocateMemory();
  // The buffer owning `buf`'s memory (itself unless aliased); adds the element offset to *offset.
  int AliasRoot(int buf, int64_t* offset) const;
  absl::Status LoadInputs(const std::vector<NamedTensor>& inputs);
  NamedTensor StoreOutput(const IoBinding& out) const;

  PlannedProgram plan_;
  std::vector<TensorSignature> input_sigs_, output_sigs_;
  std::vector<int64_t> slot_floats_;  // laid out by LayOutMemory
  std::vector<int> slot_of_;          // per buffer, -1 = none
  int64_t scratch_floats_ = 0;
  uint64_t memory_bytes_ = 0;
  std::vector<std::vector<float>> slots_;
  std::vector<float*> buf_ptr_;
  std::vector<float> scratch_;
  int64_t arena_floats_ = 0;
  absl::Mutex mu_;
};

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_PROGRAM_H_
