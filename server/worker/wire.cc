#include "server/worker/wire.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "anerd/worker/v1/worker.pb.h"

namespace anerd::worker::wire {
namespace {

namespace pb = ::anerd::worker::v1;

void ToPb(const Span& s, pb::Span* out) {
  out->set_offset(s.offset);
  out->set_size(s.size);
}
Span FromPb(const pb::Span& s) { return {s.offset(), s.size()}; }

void ToPb(const backend::TensorSignature& s, pb::Signature* out) {
  out->set_name(s.name);
  out->set_dtype(static_cast<int>(s.type.dtype));
  for (int64_t d : s.type.shape) out->add_shape(d);
}

std::vector<backend::TensorSignature> FromPb(
    const google::protobuf::RepeatedPtrField<pb::Signature>& in) {
  std::vector<backend::TensorSignature> out;
  for (const pb::Signature& s : in) {
    mil::TensorType type;
    type.dtype = static_cast<mil::DType>(s.dtype());
    type.shape.assign(s.shape().begin(), s.shape().end());
    out.push_back({s.name(), std::move(type)});
  }
  return out;
}

void ToPb(const CompileRequest& c, pb::CompileRequest* out) {
  out->set_mil_text(c.mil_text);
  out->set_pass_dumps(c.pass_dumps);
  out->set_numerics(static_cast<int>(c.options.numerics));
  out->set_ignore_attn_mask(c.options.ignore_attn_mask);
  out->set_reference_mode(c.options.reference_mode);
  out->set_max_memory_bytes(c.options.max_memory_bytes);
  if (c.options.qos.has_value()) out->set_qos(*c.options.qos);
  for (const WeightRef& w : c.weights) {
    pb::WeightRef* ref = out->add_weights();
    ref->set_path(w.path);
    ToPb(w.bytes, ref->mutable_bytes());
  }
}

CompileRequest FromPb(pb::CompileRequest* c) {
  CompileRequest out;
  out.mil_text = std::move(*c->mutable_mil_text());
  out.options.numerics = static_cast<backend::NumericsMode>(c->numerics());
  out.options.ignore_attn_mask = c->ignore_attn_mask();
  out.options.reference_mode = c->reference_mode();
  out.options.max_memory_bytes = c->max_memory_bytes();
  if (c->has_qos()) out.options.qos = c->qos();
  out.pass_dumps = c->pass_dumps();
  for (const pb::WeightRef& w : c->weights()) out.weights.push_back({w.path(), FromPb(w.bytes())});
  return out;
}

void ToPb(const SupportsRequest& s, pb::SupportsRequest* out) {
  out->set_op(s.query.op);
  for (const auto& [name, type] : s.query.inputs) ToPb({name, type}, out->add_inputs());
  for (const mil::TensorType& type : s.query.outputs) ToPb({"", type}, out->add_outputs());
}

SupportsRequest FromPb(const pb::SupportsRequest& s) {
  SupportsRequest out;
  out.query.op = s.op();
  for (backend::TensorSignature& in : FromPb(s.inputs())) {
    out.query.inputs.emplace_back(std::move(in.name), std::move(in.type));
  }
  for (backend::TensorSignature& o : FromPb(s.outputs())) out.query.outputs.push_back(o.type);
  return out;
}

void ToPb(const RunRequest& r, pb::RunRequest* out) {
  out->set_handle(r.handle);
  for (const TensorRef& t : r.inputs) {
    pb::TensorRef* ref = out->add_inputs();
    ref->set_name(t.name);
    ref->set_dtype(static_cast<int>(t.type.dtype));
    for (int64_t d : t.type.shape) ref->add_shape(d);
    ToPb(t.bytes, ref->mutable_bytes());
  }
  ToPb(r.outputs, out->mutable_outputs());
}

RunRequest FromPb(const pb::RunRequest& r) {
  RunRequest out;
  out.handle = r.handle();
  for (const pb::TensorRef& t : r.inputs()) {
    TensorRef ref;
    ref.name = t.name();
    ref.type.dtype = static_cast<mil::DType>(t.dtype());
    ref.type.shape.assign(t.shape().begin(), t.shape().end());
    ref.bytes = FromPb(t.bytes());
    out.inputs.push_back(std::move(ref));
  }
  out.outputs = FromPb(r.outputs());
  return out;
}

void ToPb(const Hello& h, pb::Hello* out) {
  out->set_protocol(h.protocol);
  out->set_available(h.available);
  out->set_unavailable_reason(h.unavailable_reason);
  const backend::BackendDescription& d = h.description;
  out->set_name(d.name);
  out->set_version(d.version);
  out->set_device(d.device);
  out->set_fp16_compute(d.capabilities.fp16_compute);
  out->set_honors_attn_mask(d.capabilities.honors_attn_mask);
  out->set_multiple_inputs(d.capabilities.multiple_inputs);
  out->set_compile_budget(d.capabilities.compile_budget);
  out->set_qos(d.capabilities.qos);
  out->set_hardware_time(d.capabilities.hardware_time);
  out->set_pass_dumps(d.capabilities.pass_dumps);
  for (const auto& [k, v] : d.facts) {
    pb::Fact* f = out->add_facts();
    f->set_key(k);
    f->set_value(v);
  }
  for (const std::string& op : h.supported_ops) out->add_supported_ops(op);
}

Hello FromPb(const pb::Hello& h) {
  Hello out;
  out.protocol = h.protocol();
  out.available = h.available();
  out.unavailable_reason = h.unavailable_reason();
  backend::BackendDescription& d = out.description;
  d.name = h.name();
  d.version = h.version();
  d.device = h.device();
  d.capabilities.fp16_compute = h.fp16_compute();
  d.capabilities.honors_attn_mask = h.honors_attn_mask();
  d.capabilities.multiple_inputs = h.multiple_inputs();
  d.capabilities.compile_budget = h.compile_budget();
  d.capabilities.qos = h.qos();
  d.capabilities.hardware_time = h.hardware_time();
  d.capabilities.pass_dumps = h.pass_dumps();
  for (const pb::Fact& f : h.facts()) d.facts.emplace_back(f.key(), f.value());
  out.supported_ops.assign(h.supported_ops().begin(), h.supported_ops().end());
  return out;
}

void ToPb(const CompileResponse& c, pb::CompileResponse* out) {
  out->set_handle(c.handle);
  for (const auto& s : c.inputs) ToPb(s, out->add_inputs());
  for (const auto& s : c.outputs) ToPb(s, out->add_outputs());
  out->set_memory_bytes(c.memory_bytes);
  for (const backend::PassDump& d : c.pass_dumps) {
    pb::PassDump* dump = out->add_pass_dumps();
    dump->set_name(d.name);
    dump->set_text(d.text);
  }
}

CompileResponse FromPb(const pb::CompileResponse& c) {
  CompileResponse out{c.handle(), FromPb(c.inputs()), FromPb(c.outputs()), c.memory_bytes(), {}};
  for (const pb::PassDump& d : c.pass_dumps()) out.pass_dumps.push_back({d.name(), d.text()});
  return out;
}

void ToPb(const RunResponse& r, pb::RunResponse* out) {
  for (const Span& s : r.outputs) ToPb(s, out->add_outputs());
  out->set_total_us(r.total_us);
  out->set_compute_us(r.compute_us);
  if (r.hardware_us.has_value()) {
    out->set_hardware_us(*r.hardware_us);
    out->set_hardware_simulated(r.hardware_simulated);
  }
}

RunResponse FromPb(const pb::RunResponse& r) {
  RunResponse out;
  for (const pb::Span& s : r.outputs()) out.outputs.push_back(FromPb(s));
  out.total_us = r.total_us();
  out.compute_us = r.compute_us();
  if (r.has_hardware_us()) {
    out.hardware_us = r.hardware_us();
    out.hardware_simulated = r.hardware_simulated();
  }
  return out;
}

void ToPb(const backend::RuleProbeReport& r, pb::RuleProbeReport* out) {
  out->set_chip(r.chip);
  out->set_os_build(r.os_build);
  out->set_simulated(r.simulated);
  for (const backend::RuleMeasurement& m : r.rows) {
    pb::RuleMeasurement* row = out->add_rows();
    row->set_rule(m.rule);
    row->set_expected(m.expected);
    row->set_measured(m.measured);
    row->set_agrees(m.agrees);
    row->set_detail(m.detail);
  }
}

backend::RuleProbeReport FromPb(const pb::RuleProbeReport& r) {
  backend::RuleProbeReport out;
  out.chip = r.chip();
  out.os_build = r.os_build();
  out.simulated = r.simulated();
  for (const pb::RuleMeasurement& m : r.rows()) {
    out.rows.push_back({m.rule(), m.expected(), m.measured(), m.agrees(), m.detail()});
  }
  return out;
}

}  // namespace

std::string QueryOutOfBounds(const backend::OpQuery& query) {
  const size_t operands = query.inputs.size() + query.outputs.size();
  if (operands > kMaxQueryOperands) {
    return absl::StrCat("its query has ", operands, " operands, above the worker wire's limit of ",
                        kMaxQueryOperands);
  }
  if (query.op.size() > kMaxQueryNameBytes) {
    return absl::StrCat("its name is ", query.op.size(),
                        " bytes, above the worker wire's limit of ", kMaxQueryNameBytes);
  }
  auto type_problem = [](const mil::TensorType& t) -> std::string {
    if (t.rank() > kMaxQueryRank) {
      return absl::StrCat("has rank ", t.rank(), ", above the worker wire's limit of ",
                          kMaxQueryRank);
    }
    if (static_cast<int>(t.dtype) > static_cast<int>(mil::DType::kString)) {
      return absl::StrCat("has an unknown dtype (", static_cast<int>(t.dtype), ")");
    }
    return "";
  };
  for (const auto& [name, type] : query.inputs) {
    if (name.size() > kMaxQueryNameBytes) {
      return absl::StrCat("an operand name is ", name.size(),
                          " bytes, above the worker wire's limit of ", kMaxQueryNameBytes);
    }
    if (std::string why = type_problem(type); !why.empty()) {
      return absl::StrCat("operand '", name, "' ", why);
    }
  }
  for (const mil::TensorType& type : query.outputs) {
    if (std::string why = type_problem(type); !why.empty()) return absl::StrCat("an output ", why);
  }
  return "";
}

void BoundPassDumps(std::vector<backend::PassDump>* dumps) {
  size_t left = kMaxPassDumpBytes;
  for (backend::PassDump& d : *dumps) {
    if (d.text.size() <= left) {
      left -= d.text.size();
      continue;
    }
    size_t keep = left;  // on a UTF-8 boundary: the proto field must stay valid UTF-8
    while (keep > 0 && (static_cast<unsigned char>(d.text[keep]) & 0xC0) == 0x80) --keep;
    const size_t dropped = d.text.size() - keep;
    d.text.resize(keep);
    left = 0;
    absl::StrAppend(&d.text, "\n[", dropped, " bytes cut: the worker wire carries at most ",
                    kMaxPassDumpBytes, " bytes of pass dumps per compile]\n");
  }
}

absl::Status Send(Channel& channel, const Request& request, int pass_fd) {
  pb::Request msg;
  msg.set_id(request.id);
  msg.set_new_arena_bytes(request.new_arena_bytes);
  for (uint64_t h : request.release) msg.add_release(h);
  if (const auto* c = std::get_if<CompileRequest>(&request.kind)) {
    ToPb(*c, msg.mutable_compile());
  } else if (const auto* r = std::get_if<RunRequest>(&request.kind)) {
    ToPb(*r, msg.mutable_run());
  } else if (std::holds_alternative<Shutdown>(request.kind)) {
    msg.set_shutdown(true);
  } else if (const auto* s = std::get_if<SupportsRequest>(&request.kind)) {
    ToPb(*s, msg.mutable_supports());
  } else if (std::holds_alternative<ProbeRulesRequest>(request.kind)) {
    msg.set_probe_rules(true);
  }
  if (msg.ByteSizeLong() > kMaxFrameBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the request's control message is ", msg.ByteSizeLong(),
                     " bytes, above the worker channel's limit of ", kMaxFrameBytes));
  }
  return channel.Send(msg, pass_fd);
}

absl::Status Receive(Channel& channel, Request* request, int* received_fd) {
  pb::Request msg;
  absl::Status status = channel.Receive(&msg, received_fd);
  if (!status.ok()) return status;
  *request = Request();
  request->id = msg.id();
  request->new_arena_bytes = msg.new_arena_bytes();
  request->release.assign(msg.release().begin(), msg.release().end());
  switch (msg.kind_case()) {
    case pb::Request::kCompile:
      request->kind = FromPb(msg.mutable_compile());
      break;
    case pb::Request::kRun:
      request->kind = FromPb(msg.run());
      break;
    case pb::Request::kShutdown:
      request->kind = Shutdown{};
      break;
    case pb::Request::kSupports:
      request->kind = FromPb(msg.supports());
      break;
    case pb::Request::kProbeRules:
      request->kind = ProbeRulesRequest{};
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

absl::Status Send(Channel& channel, const Response& response) {
  pb::Response msg;
  msg.set_id(response.id);
  msg.set_code(static_cast<int>(response.status.code()));
  msg.set_message(std::string(response.status.message()));
  msg.set_compiles_used(response.compiles_used);
  if (const auto* h = std::get_if<Hello>(&response.kind)) {
    ToPb(*h, msg.mutable_hello());
  } else if (const auto* c = std::get_if<CompileResponse>(&response.kind)) {
    ToPb(*c, msg.mutable_compile());
  } else if (const auto* r = std::get_if<RunResponse>(&response.kind)) {
    ToPb(*r, msg.mutable_run());
  } else if (const auto* p = std::get_if<backend::RuleProbeReport>(&response.kind)) {
    ToPb(*p, msg.mutable_rule_probe());
  }
  return channel.Send(msg);
}

absl::Status Receive(Channel& channel, Response* response) {
  pb::Response msg;
  absl::Status status = channel.Receive(&msg);
  if (!status.ok()) return status;
  *response = Response();
  response->id = msg.id();
  response->status = msg.code() == 0
                         ? absl::OkStatus()
                         : absl::Status(static_cast<absl::StatusCode>(msg.code()), msg.message());
  response->compiles_used = msg.compiles_used();
  switch (msg.kind_case()) {
    case pb::Response::kHello:
      response->kind = FromPb(msg.hello());
      break;
    case pb::Response::kCompile:
      response->kind = FromPb(msg.compile());
      break;
    case pb::Response::kRun:
      response->kind = FromPb(msg.run());
      break;
    case pb::Response::kRuleProbe:
      response->kind = FromPb(msg.rule_probe());
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

}  // namespace anerd::worker::wire
