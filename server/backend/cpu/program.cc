#include "server/backend/cpu/program.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"
#include "common/status_macros.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"

namespace anerd::backend::cpu {
namespace {

double MicrosSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

CpuProgram::CpuProgram(PlannedProgram plan, Unallocated) : plan_(std::move(plan)) {
  for (const IoBinding& b : plan_.inputs) input_sigs_.push_back(b.sig);
  for (const IoBinding& b : plan_.outputs) output_sigs_.push_back(b.sig);
  LayOutMemory();
}

CpuProgram::CpuProgram(PlannedProgram plan) : CpuProgram(std::move(plan), Unallocated{}) {
  AllocateMemory();
}

absl::StatusOr<std::unique_ptr<CpuProgram>> CpuProgram::Create(PlannedProgram plan,
                                                               uint64_t max_memory_bytes) {
  std::unique_ptr<CpuProgram> program(new CpuProgram(std::move(plan), Unallocated{}));
  if (max_memory_bytes > 0 && program->memory_bytes_ > max_memory_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the program needs ", program->memory_bytes_, " ", kMemoryLimitMarker,
                     " on the cpu backend (buffers, scratch and decoded constants); the limit is ",
                     max_memory_bytes));
  }
  program->AllocateMemory();
  return program;
}

int CpuProgram::num_steps() const {
  int n = 0;
  for (const Step& s : plan_.steps) n += s.fn != nullptr;
  return n;
}

int CpuProgram::AliasRoot(int buf, int64_t* offset) const {
  while (plan_.buffers[buf].alias_of >= 0) {
    if (offset != nullptr) *offset += plan_.buffers[buf].alias_offset;
    buf = plan_.buffers[buf].alias_of;
  }
  return buf;
}

void CpuProgram::LayOutMemory() {
  const int nb = static_cast<int>(plan_.buffers.size());
  std::vector<int> def(nb, INT_MAX), last(nb, -1);
  for (const IoBinding& in : plan_.inputs) def[in.view.buf] = -1;
  int64_t scratch = 0;
  for (int i = 0; i < static_cast<int>(plan_.steps.size()); ++i) {
    const Step& s = plan_.steps[i];
    if (!s.fn) continue;
    for (int b : s.writes) def[b] = std::min(def[b], i);
    for (int b : s.reads) last[b] = std::max(last[b], i);
    scratch = std::max(scratch, s.scratch_floats);
  }
  for (const IoBinding& out : plan_.outputs) last[out.view.buf] = INT_MAX;
  for (int b = 0; b < nb; ++b) {  // an alias keeps its root allocated for its own lifetime too
    const int root = AliasRoot(b, nullptr);
    def[root] = std::min(def[root], def[b]);
    last[root] = std::max(last[root], last[b]);
  }
  std::vector<int> order;
  for (int b = 0; b < nb; ++b) {
    const BufferSpec& spec = plan_.buffers[b];
    if (!spec.constant && spec.alias_of < 0 && def[b] != INT_MAX) order.push_back(b);
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return def[a] < def[b]; });
  std::vector<int64_t> slot_size;
  std::vector<int> slot_last;  // last use of the slot's current occupant
  std::vector<int> slot_of(nb, -1);
  for (int b : order) {
    const int64_t need = plan_.buffers[b].floats;
    int best = -1;
    for (int s = 0; s < static_cast<int>(slot_size.size()); ++s) {
      if (slot_last[s] >= def[b]) continue;  // still live (or read by this very step)
      const bool fits = slot_size[s] >= need, best_fits = best >= 0 && slot_size[best] >= need;
      if (best < 0 || (fits && (!best_fits || slot_size[s] < slot_size[best])) ||
          (!fits && !best_fits && slot_size[s] > slot_size[best])) {
        best = s;
      }
    }
    if (best < 0) {
      best = static_cast<int>(slot_size.size());
      slot_size.push_back(0);
      slot_last.push_back(-1);
    }
    slot_size[best] = std::max(slot_size[best], need);
    slot_last[best] = std::max(last[b], def[b]);
    slot_of[b] = best;
  }
  slot_floats_ = std::move(slot_size);
  slot_of_ = std::move(slot_of);
  scratch_floats_ = std::max<int64_t>(scratch, 1);
  uint64_t floats = static_cast<uint64_t>(scratch_floats_);
  for (int64_t n : slot_floats_) floats += static_cast<uint64_t>(std::max<int64_t>(n, 1));
  std::vector<const std::vector<float>*> constants;  // counted once even when shared
  for (const BufferSpec& spec : plan_.buffers) {
    if (spec.constant) constants.push_back(spec.constant.get());
  }
  std::sort(constants.begin(), constants.end());
  constants.erase(std::unique(constants.begin(), constants.end()), constants.end());
  for (const std::vector<float>* c : constants) floats += c->size();
  memory_bytes_ = floats * sizeof(float);
}

void CpuProgram::AllocateMemory() {
  const int nb = static_cast<int>(plan_.buffers.size());
  slots_.resize(slot_floats_.size());
  for (size_t s = 0; s < slot_floats_.size(); ++s) {
    slots_[s].assign(std::max<int64_t>(slot_floats_[s], 1), 0.0f);
    arena_floats_ += slot_floats_[s];
  }
  buf_ptr_.assign(nb, nullptr);
  for (int b = 0; b < nb; ++b) {
    if (plan_.buffers[b].constant) {
      buf_ptr_[b] = plan_.buffers[b].constant->data();
    } else if (slot_of_[b] >= 0) {
      buf_ptr_[b] = slots_[slot_of_[b]].data();
    }
  }
  for (int b = 0; b < nb; ++b) {
    int64_t offset = 0;
    const int root = AliasRoot(b, &offset);
    if (root != b && buf_ptr_[root] != nullptr) buf_ptr_[b] = buf_ptr_[root] + offset;
  }
  scratch_.assign(scratch_floats_, 0.0f);
}

absl::Status CpuProgram::LoadInputs(const std::vector<NamedTensor>& inputs) {
  ANERD_RETURN_IF_ERROR(CheckInputs(input_sigs_, inputs));
  for (const NamedTensor& in : inputs) {
    for (const IoBinding& b : plan_.inputs) {
      if (b.sig.name != in.name) continue;
      float* dst = buf_ptr_[b.view.buf];
      const int64_t n = in.tensor.num_elements();
      if (in.tensor.dtype() == mil::DType::kFp16) {
        const auto* src = static_cast<const uint16_t*>(in.tensor.data());
        ParallelFor(n, kParallelMinElements, [&](int, int64_t i0, int64_t i1) {
          HalfToFloatArray(src + i0, dst + i0, i1 - i0);
        });
      } else if (in.tensor.dtype() == mil::DType::kFp32) {
        std::memcpy(dst, in.tensor.data(), n * sizeof(float));
      } else {
        for (int64_t i = 0; i < n; ++i) {
          dst[i] = static_cast<float>(LoadElement(in.tensor.dtype(), in.tensor.data(), i));
        }
      }
    }
  }
  return absl::OkStatus();
}

NamedTensor CpuProgram::StoreOutput(const IoBinding& out) const {
  NamedTensor t{out.sig.name, Tensor(out.sig.type)};
  const int64_t n = t.tensor.num_elements();
  const float* src = buf_ptr_[out.view.buf] + out.view.offset;
  std::vector<float> tmp;
  if (!out.view.IsContiguous()) {
    tmp.resize(n);
    CopyStrided(Strided{src, out.view.shape, out.view.strides}, tmp.data());
    src = tmp.data();
  }
  void* dst = t.tensor.mutable_data();
  if (out.sig.type.dtype == mil::DType::kFp16) {
    auto* half = static_cast<uint16_t*>(dst);
    ParallelFor(n, kParallelMinElements, [&](int, int64_t i0, int64_t i1) {
      FloatToHalfArray(src + i0, half + i0, i1 - i0);
    });
  } else if (out.sig.type.dtype == mil::DType::kFp32) {
    std::memcpy(dst, src, n * sizeof(float));
  } else {
    for (int64_t i = 0; i < n; ++i) StoreElement(out.sig.type.dtype, dst, i, src[i]);
  }
  return t;
}

absl::StatusOr<RunResult> CpuProgram::Run(const std::vector<NamedTensor>& inputs) {
  return RunStoppable(inputs, StopCheck());
}

absl::StatusOr<RunResult> CpuProgram::RunStoppable(const std::vector<NamedTensor>& inputs,
                                                   const StopCheck& stop) {
  const auto t0 = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  ANERD_RETURN_IF_ERROR(LoadInputs(inputs));
  const auto t1 = std::chrono::steady_clock::now();
  const StepContext ctx{buf_ptr_.data(), scratch_.data()};
  for (const Step& s : plan_.steps) {
    if (!s.fn) continue;
    if (stop) ANERD_RETURN_IF_ERROR(stop());
    absl::Status st = s.fn(ctx);
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat(s.op, " (line ", s.line, "): ", st.message()));
    }
  }
  RunResult result;
  result.timing.compute_us = MicrosSince(t1);
  for (const IoBinding& out : plan_.outputs) result.outputs.push_back(StoreOutput(out));
  result.timing.total_us = MicrosSince(t0);
  return result;
}

}  // namespace anerd::backend::cpu
