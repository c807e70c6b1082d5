#include "server/backend/cpu/passes.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/mil/printer.h"
#include "common/status_macros.h"
#include "server/backend/cpu/planner.h"

namespace anerd::backend::cpu {
namespace {

std::string Buffers(const std::vector<int>& ids) {
  return absl::StrJoin(ids, " ", [](std::string* out, int b) { absl::StrAppend(out, "b", b); });
}

std::string ViewText(const View& v) {
  return absl::StrCat("b", v.buf, "+", v.offset, " shape [", absl::StrJoin(v.shape, ", "),
                      "] strides [", absl::StrJoin(v.strides, ", "), "]");
}

std::string DumpName(int index, absl::string_view stage) {
  return absl::StrFormat("%02d-%s", index, stage);
}

}  // namespace

const std::array<PassInfo, kNumPlannerPasses>& PlannerPipeline() {
  static const std::array<PassInfo, kNumPlannerPasses> pipeline = {{
      {PlannerPass::kViews, "views"},
      {PlannerPass::kFoldTransposes, "fold-transposes"},
      {PlannerPass::kFuseElementwise, "fuse-elementwise"},
      {PlannerPass::kAliasConcat, "alias-concat"},
  }};
  return pipeline;
}

PassSet PassSet::All() {
  PassSet s;
  for (const PassInfo& p : PlannerPipeline()) s.Enable(p.pass);
  return s;
}

PassSet PassSet::For(const CompileOptions& options) {
  return options.reference_mode ? None() : All();
}

std::string PrintPlan(const PlannedProgram& plan) {
  std::string out = "inputs:\n";
  for (const IoBinding& in : plan.inputs) {
    absl::StrAppend(&out, "  ", in.sig.name, ": ", in.sig.type.ToString(), " -> ",
                    ViewText(in.view), "\n");
  }
  int live = 0;
  std::string steps;
  for (const Step& s : plan.steps) {
    if (!s.fn) continue;
    absl::StrAppend(&steps, "  ", live++, ": ", s.op, " (line ", s.line, ") reads [",
                    Buffers(s.reads), "] writes [", Buffers(s.writes), "]");
    if (s.scratch_floats > 0) absl::StrAppend(&steps, " scratch ", s.scratch_floats);
    if (!s.note.empty()) absl::StrAppend(&steps, " ; ", s.note);
    absl::StrAppend(&steps, "\n");
  }
  absl::StrAppend(&out, "steps: ", live, "\n", steps, "outputs:\n");
  for (const IoBinding& o : plan.outputs) {
    absl::StrAppend(&out, "  ", o.sig.name, ": ", o.sig.type.ToString(), " <- ", ViewText(o.view),
                    "\n");
  }
  int constants = 0;
  int64_t floats = 0;
  std::vector<std::string> aliases;
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const BufferSpec& b = plan.buffers[i];
    if (b.constant) ++constants;
    if (b.alias_of >= 0) {
      aliases.push_back(absl::StrCat("b", i, "=b", b.alias_of, "+", b.alias_offset));
    } else {
      floats += b.floats;
    }
  }
  absl::StrAppend(&out, "buffers: ", plan.buffers.size(), " (", constants, " constant), ", floats,
                  " floats before reuse\n");
  if (!aliases.empty()) absl::StrAppend(&out, "aliases: ", absl::StrJoin(aliases, " "), "\n");
  return out;
}

PassManager::PassManager(const mil::VerifiedProgram& program, const CompileOptions& options)
    : program_(program), options_(options) {}

absl::StatusOr<PlannedProgram> PassManager::Run(std::vector<PassDump>* dumps) {
  const PassSet final_set = PassSet::For(options_);
  if (dumps == nullptr) return Planner(program_, options_, final_set).Plan();
  int index = 0;
  dumps->push_back({DumpName(index++, "input"), mil::PrintProgram(program_.program())});
  PassSet set = PassSet::None();
  ANERD_ASSIGN_OR_RETURN(PlannedProgram plan, Planner(program_, options_, set).Plan());
  dumps->push_back({DumpName(index++, "lower"), PrintPlan(plan)});
  for (const PassInfo& p : PlannerPipeline()) {
    if (!final_set.on(p.pass)) continue;
    set.Enable(p.pass);
    ANERD_ASSIGN_OR_RETURN(plan, Planner(program_, options_, set).Plan());
    dumps->push_back({DumpName(index++, p.name), PrintPlan(plan)});
  }
  return plan;
}

}  // namespace anerd::backend::cpu
