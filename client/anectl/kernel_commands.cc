// anectl kernel compile|run|ls|show|rm: submit MIL kernels to anerd, evaluate them on .npy data
// and manage the compile cache's registry.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <random>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "client/anectl/pass_dumps.h"
#include "common/atomic_file.h"
#include "common/fp16.h"
#include "common/npy.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

constexpr int64_t kMaxMilFileBytes = 64 << 20;
constexpr int64_t kMaxWeightFileBytes = int64_t{4} << 30;

struct DTypeInfo {
  const char* name;
  const char* descr;
  int size;
};
constexpr DTypeInfo kDTypes[] = {{"fp16", "<f2", 2},  {"fp32", "<f4", 4}, {"int32", "<i4", 4},
                                 {"int16", "<i2", 2}, {"int8", "|i1", 1}, {"uint8", "|u1", 1},
                                 {"bool", "|b1", 1}};

const DTypeInfo* ByName(const std::string& name) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}
const DTypeInfo* ByDescr(const std::string& descr) {
  for (const DTypeInfo& d : kDTypes) {
    if (descr == d.descr) return &d;
  }
  return nullptr;
}

double ElementAt(const std::string& dtype, const std::string& data, size_t i) {
  const char* p = data.data();
  auto load = [&](auto v) {
    std::memcpy(&v, p + i * sizeof(v), sizeof(v));
    return v;
  };
  if (dtype == "fp16") return HalfToFloat(load(uint16_t{}));
  if (dtype == "fp32") return load(float{});
  if (dtype == "int32") return load(int32_t{});
  if (dtype == "int16") return load(int16_t{});
  if (dtype == "int8") return load(int8_t{});
  return load(uint8_t{});
}

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string SpecString(const v1::TensorSpec& s) {
  return absl::StrCat(s.name(), ": ", s.dtype(), ShapeString(s.shape()));
}

std::string SignatureString(const v1::KernelInfo& k) {
  std::vector<std::string> in, out;
  for (const auto& s : k.inputs()) in.push_back(SpecString(s));
  for (const auto& s : k.outputs()) out.push_back(SpecString(s));
  return absl::StrCat("(", absl::StrJoin(in, ", "), ") -> (", absl::StrJoin(out, ", "), ")");
}

Json SpecsJson(const google::protobuf::RepeatedPtrField<v1::TensorSpec>& specs) {
  Json out = Json::array();
  for (const auto& s : specs)
    out.push_back({{"name", s.name()}, {"dtype", s.dtype()}, {"shape", s.shape()}});
  return out;
}

Json KernelJson(const v1::KernelInfo& k) {
  return {{"id", k.id()},
          {"name", k.name()},
          {"backend", k.backend()},
          {"options", k.options()},
          {"inputs", SpecsJson(k.inputs())},
          {"outputs", SpecsJson(k.outputs())},
          {"mil_bytes", k.mil_bytes()},
          {"weight_bytes", k.weight_bytes()},
          {"created_unix_ms", k.created_unix_ms()},
          {"last_used_unix_ms", k.last_used_unix_ms()},
          {"compile_ms", k.compile_ms()},
          {"hits", k.hits()},
          {"loaded", k.loaded()}};
}

// Compile flags shared by `compile` and `run FILE.mil`.
struct CompileFlags {
  std::vector<std::string> weights;
  std::string name;
  std::string numerics = "ane";
  std::string backend;
  bool ignore_attn_mask = false;
  std::string dump_passes;  // `compile` only: a local directory
  int64_t qos = -1;         // -1 = not given (the daemon's 21)

  void Register(ArgParser& p) {
    p.AddRepeated(
        "weights", &weights,
        "weight directory or file (repeatable; default: the weights/ folder beside the MIL file)");
    p.AddString("name", &name, "a label for the kernel");
    p.AddString("numerics", &numerics, "ane (fp16 rounding after every op, default) or fp32");
    p.AddString("backend", &backend, "backend to compile for (default: the daemon's)");
    p.AddBool("ignore-attn-mask", &ignore_attn_mask, "the ANE quirk: sdpa ignores attn_mask");
    p.AddInt("qos", &qos,
             "ANE QoS of the kernel's compile, load and evaluations (0-63; default 21)");
  }
};

// Collects weight files: a directory contributes every regular file under it, named by its path
// relative to the directory; a file contributes itself under its base name.
absl::StatusOr<std::vector<client::AnerdClient::WeightFile>> CollectWeights(
    const std::string& mil_path, const std::vector<std::string>& specs) {
  std::vector<std::string> roots = specs;
  if (roots.empty()) {
    const fs::path beside = fs::path(mil_path).parent_path() / "weights";
    if (fs::is_directory(beside)) roots.push_back(beside.string());
  }
  std::vector<client::AnerdClient::WeightFile> files;
  for (const std::string& root : roots) {
    std::error_code ec;
    if (fs::is_regular_file(root, ec)) {
      absl::StatusOr<std::string> bytes = ReadFileToString(root, kMaxWeightFileBytes);
      if (!bytes.ok()) return bytes.status();
      files.push_back({fs::path(root).filename().string(), *std::move(bytes)});
      continue;
    }
    if (!fs::is_directory(root, ec)) {
      return absl::NotFoundError(absl::StrCat("--weights ", root, ": no such file or directory"));
    }
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(root, ec)) {
      if (!e.is_regular_file()) continue;
      absl::StatusOr<std::string> bytes = ReadFileToString(e.path().string(), kMaxWeightFileBytes);
      if (!bytes.ok()) return bytes.status();
      files.push_back({fs::relative(e.path(), root).string(), *std::move(bytes)});
    }
  }
  return files;
}

absl::StatusOr<v1::CompileKernelResponse> CompileFile(CommandContext& ctx, const std::string& path,
                                                      const CompileFlags& flags) {
  absl::StatusOr<std::string> text = ReadFileToString(path, kMaxMilFileBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<client::AnerdClient::WeightFile>> weights =
      CollectWeights(path, flags.weights);
  if (!weights.ok()) return weights.status();
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return client.status();
  v1::CompileKernelHeader header;
  header.set_name(flags.name.empty() ? fs::path(path).stem().string() : flags.name);
  header.set_mil_text(*text);
  header.mutable_options()->set_numerics(flags.numerics);
  header.mutable_options()->set_backend(flags.backend);
  header.mutable_options()->set_ignore_attn_mask(flags.ignore_attn_mask);
  header.mutable_options()->set_dump_passes(!flags.dump_passes.empty());
  if (flags.qos >= 0) header.mutable_options()->set_qos(static_cast<uint32_t>(flags.qos));
  absl::StatusOr<v1::CompileKernelResponse> r =
      (*client)->CompileKernel(std::move(header), *weights);
  // The daemon's diagnostics start "LINE:COL: error: ..."; name the file as `mil check` does.
  if (!r.ok() && !r.status().message().empty() && absl::ascii_isdigit(r.status().message()[0])) {
    return absl::Status(r.status().code(), absl::StrCat(path, ":", r.status().message()));
  }
  return r;
}

// Accepts a full id, a unique prefix of one, or a kernel name that only one kernel has.
absl::StatusOr<std::string> ResolveId(CommandContext& ctx, const std::string& id) {
  if (id.size() == 64) return id;
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<v1::ListKernelsResponse> all = (*client)->ListKernels();
  if (!all.ok()) return all.status();
  std::vector<std::string> matches, named;
  for (const v1::KernelInfo& k : all->kernels()) {
    if (absl::StartsWith(k.id(), id)) matches.push_back(k.id());
    if (k.name() == id) named.push_back(k.id());
  }
  if (named.size() == 1 && matches.empty()) return named[0];
  if (named.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("kernel name '", id, "' is ambiguous (",
                                                   named.size(),
                                                   " kernels have it); use an id prefix"));
  }
  if (matches.size() == 1) return matches[0];
  if (matches.empty())
    return absl::NotFoundError(
        absl::StrCat("no kernel named '", id, "' or whose id starts with it"));
  return absl::InvalidArgumentError(absl::StrCat("kernel id prefix '", id, "' is ambiguous (",
                                                 matches.size(), " kernels match)"));
}

int Compile(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string path;
  CompileFlags flags;
  ArgParser parser("anectl kernel compile FILE.mil [--weights DIR|FILE ...] [--name N]",
                   "Compiles a MIL program on the daemon and prints its kernel id and signature. "
                   "The id is a content hash: compiling the same program again is a cache hit.");
  parser.AddPositional("FILE.mil", &path, "the MIL program");
  flags.Register(parser);
  parser.AddString("dump-passes", &flags.dump_passes,
                   "write the program after each compile pass to DIR/NN-pass.txt (debugging)");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<v1::CompileKernelResponse> r = CompileFile(ctx, path, flags);
  if (!r.ok()) return ctx.Fail(r.status());
  std::vector<std::string> dumped;
  if (!flags.dump_passes.empty()) {
    absl::StatusOr<std::vector<std::string>> written =
        WritePassDumps(flags.dump_passes, r->pass_dumps());
    if (!written.ok()) return ctx.Fail(written.status());
    dumped = *written;
    if (written->empty()) {
      std::fprintf(stderr, "note: backend %s returned no pass dumps\n",
                   r->kernel().backend().c_str());
    }
  }
  if (ctx.json()) {
    Json out = {{"schema_version", 1},
                {"kernel", KernelJson(r->kernel())},
                {"cache_hit", r->cache_hit()},
                {"compile_ms", r->compile_ms()},
                {"warnings", r->warnings()}};
    if (!flags.dump_passes.empty()) out["pass_dumps"] = dumped;
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  for (const std::string& w : r->warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::cout << ctx.Bold(r->kernel().id()) << "\n"
            << absl::StrFormat("  %-10s %s\n", "name", r->kernel().name())
            << absl::StrFormat("  %-10s %s\n", "signature", SignatureString(r->kernel()))
            << absl::StrFormat("  %-10s %s (%s)\n", "backend", r->kernel().backend(),
                               r->kernel().options())
            << absl::StrFormat(
                   "  %-10s %s\n", "compile",
                   r->cache_hit() ? "cache hit" : absl::StrFormat("%.2f ms", r->compile_ms()));
  return kExitOk;
}

absl::StatusOr<v1::Tensor> TensorFromNpy(const std::string& name, const std::string& path) {
  absl::StatusOr<NpyArray> array = ReadNpyFile(path);
  if (!array.ok()) return array.status();
  const DTypeInfo* dtype = ByDescr(array->descr);
  if (dtype == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": dtype ", array->descr, " is not supported"));
  }
  v1::Tensor t;
  t.set_name(name);
  t.set_dtype(dtype->name);
  for (int64_t d : array->shape) t.add_shape(d);
  t.set_data(std::move(array->data));
  return t;
}

// Seeded uniform values in [-1, 1) for an input the user did not supply.
v1::Tensor RandomTensor(const v1::TensorSpec& spec, std::mt19937* rng) {
  v1::Tensor t;
  t.set_name(spec.name());
  t.set_dtype(spec.dtype());
  *t.mutable_shape() = spec.shape();
  int64_t n = 1;
  for (int64_t d : spec.shape()) n *= d;
  const DTypeInfo* info = ByName(spec.dtype());
  std::string data(n * (info ? info->size : 4), '\0');
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float v = uniform(*rng);
    if (spec.dtype() == "fp16") {
      const uint16_t h = FloatToHalf(v);
      std::memcpy(&data[i * 2], &h, 2);
    } else if (spec.dtype() == "fp32") {
      std::memcpy(&data[i * 4], &v, 4);
    } else if (info != nullptr && info->size == 1) {
      data[i] = static_cast<char>(static_cast<int>(v * 100));
    }
  }
  t.set_data(std::move(data));
  return t;
}

struct RunFlags {
  CompileFlags compile;
  std::vector<std::string> inputs;
  std::string out_dir;
  int64_t repeat = 1;
  bool random = false;
  int64_t seed = 0;
};

// An fp32 array given for an fp16 input is rounded to fp16 (with a notice on stderr): .npy files
// written by numpy default to float32, and the daemon would refuse the mismatch.
void ConvertFp32ToFp16(v1::Tensor* t) {
  const size_t n = t->data().size() / sizeof(float);
  std::vector<float> src(n);
  std::memcpy(src.data(), t->data().data(), n * sizeof(float));
  std::string out(n * sizeof(uint16_t), '\0');
  FloatToHalfArray(src.data(), reinterpret_cast<uint16_t*>(out.data()), n);
  t->set_data(std::move(out));
  t->set_dtype("fp16");
}

// The kernel's input called `name`, or INVALID_ARGUMENT listing the inputs it has.
absl::StatusOr<const v1::TensorSpec*> FindInput(const v1::KernelInfo& kernel,
                                                const std::string& name) {
  std::vector<std::string> names;
  for (const v1::TensorSpec& s : kernel.inputs()) {
    if (s.name() == name) return &s;
    names.push_back(SpecString(s));
  }
  return absl::InvalidArgumentError(absl::StrCat("--in ", name, ": the kernel has no input '", name,
                                                 "'; its inputs are ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<v1::EvalKernelRequest> BuildEvalRequest(const v1::KernelInfo& kernel,
                                                       const RunFlags& flags) {
  v1::EvalKernelRequest request;
  request.set_kernel_id(kernel.id());
  std::set<std::string> given;
  for (const std::string& spec : flags.inputs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--in wants NAME=FILE.npy, got '", spec, "'"));
    }
    absl::StatusOr<const v1::TensorSpec*> input = FindInput(kernel, spec.substr(0, eq));
    if (!input.ok()) return input.status();
    absl::StatusOr<v1::Tensor> t = TensorFromNpy(spec.substr(0, eq), spec.substr(eq + 1));
    if (!t.ok()) return t.status();
    if (t->dtype() == "fp32" && (*input)->dtype() == "fp16") {
      std::fprintf(stderr, "anectl: --in %s: converting %s from fp32 to fp16 (the input's type)\n",
                   t->name().c_str(), spec.substr(eq + 1).c_str());
      ConvertFp32ToFp16(&*t);
    }
    given.insert(t->name());
    *request.add_inputs() = *std::move(t);
  }
  std::mt19937 rng(static_cast<uint32_t>(flags.seed));
  for (const v1::TensorSpec& s : kernel.inputs()) {
    if (given.count(s.name()) > 0) continue;
    if (!flags.random) {
      return absl::InvalidArgumentError(
          absl::StrCat("no value for input '", SpecString(s), "': pass --in ", s.name(),
                       "=FILE.npy, or --random for seeded random values"));
    }
    *request.add_inputs() = RandomTensor(s, &rng);
  }
  return request;
}

Json SummaryJson(const v1::Tensor& t) {
  const DTypeInfo* info = ByName(t.dtype());
  const size_t n = info ? t.data().size() / info->size : 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  size_t non_finite = 0;
  for (size_t i = 0; i < n; ++i) {
    const double v = ElementAt(t.dtype(), t.data(), i);
    if (!std::isfinite(v)) {
      ++non_finite;
      continue;
    }
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  const size_t finite = n - non_finite;
  return {{"name", t.name()},         {"dtype", t.dtype()},
          {"shape", t.shape()},       {"min", finite ? lo : 0.0},
          {"max", finite ? hi : 0.0}, {"mean", finite ? sum / finite : 0.0},
          {"non_finite", non_finite}};
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

absl::Status WriteOutputs(const std::string& dir, const v1::EvalKernelResponse& response) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  for (const v1::Tensor& t : response.outputs()) {
    NpyArray a;
    a.descr = ByName(t.dtype()) ? ByName(t.dtype())->descr : "<f4";
    a.shape.assign(t.shape().begin(), t.shape().end());
    a.data = t.data();
    if (absl::Status s = WriteNpyFile(absl::StrCat(dir, "/", t.name(), ".npy"), a); !s.ok())
      return s;
  }
  return absl::OkStatus();
}

void PrintRun(CommandContext& ctx, const v1::EvalKernelResponse& last,
              const std::vector<double>& rtt, const std::vector<double>& exec,
              const std::string& id) {
  if (ctx.json()) {
    Json outputs = Json::array();
    for (const v1::Tensor& t : last.outputs()) outputs.push_back(SummaryJson(t));
    const v1::EvalTiming& tm = last.timing();
    Json out = {
        {"schema_version", 1},
        {"kernel_id", id},
        {"outputs", outputs},
        {"timing",
         {{"queued_us", tm.queued_us()},
          {"copy_in_us", tm.copy_in_us()},
          {"execute_us", tm.execute_us()},
          {"copy_out_us", tm.copy_out_us()},
          {"total_us", tm.total_us()},
          {"recompiled", tm.recompiled()},
          // The device's own time: null when the backend has none (cpu), never a made-up 0.
          {"hw_execution_us", tm.has_hw_execution_us() ? Json(tm.hw_execution_us()) : Json()},
          {"hw_time_source", tm.hw_time_source()}}},
        {"repeat", rtt.size()},
        {"client_rtt_us", {{"p50", Percentile(rtt, 0.5)}, {"p99", Percentile(rtt, 0.99)}}},
        {"server_execute_us", {{"p50", Percentile(exec, 0.5)}, {"p99", Percentile(exec, 0.99)}}}};
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << ctx.Bold(absl::StrFormat("%-16s %-6s %-20s %12s %12s %12s", "OUTPUT", "DTYPE",
                                        "SHAPE", "MIN", "MAX", "MEAN"))
            << "\n";
  for (const v1::Tensor& t : last.outputs()) {
    Json s = SummaryJson(t);
    std::cout << absl::StrFormat("%-16s %-6s %-20s %12.6g %12.6g %12.6g%s\n", t.name(), t.dtype(),
                                 ShapeString(t.shape()), s["min"].get<double>(),
                                 s["max"].get<double>(), s["mean"].get<double>(),
                                 s["non_finite"].get<size_t>() ? "  (non-finite values!)" : "");
  }
  const v1::EvalTiming& tm = last.timing();
  std::cout << absl::StrFormat(
      "\nserver: execute %.1f us, queued %.1f us, copy in %.1f us, copy out %.1f us%s\n",
      tm.execute_us(), tm.queued_us(), tm.copy_in_us(), tm.copy_out_us(),
      tm.recompiled() ? " (recompiled from stored sources first)" : "");
  std::cout << (tm.has_hw_execution_us()
                    ? absl::StrFormat("device: %.1f us (%s)\n", tm.hw_execution_us(),
                                      tm.hw_time_source())
                    : std::string("device: \u2014 (no device counter on this backend)\n"));
  if (rtt.size() > 1) {
    std::cout << absl::StrFormat(
        "%d runs: client round trip p50 %.1f us, p99 %.1f us; server execute p50 %.1f us, p99 %.1f "
        "us\n",
        rtt.size(), Percentile(rtt, 0.5), Percentile(rtt, 0.99), Percentile(exec, 0.5),
        Percentile(exec, 0.99));
  }
}

int Run(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string target;
  RunFlags flags;
  ArgParser parser(
      "anectl kernel run ID|FILE.mil --in NAME=FILE.npy ... [--out-dir DIR] [--repeat N]",
      "Evaluates a kernel (compiling FILE.mil first when given a file). Inputs come from "
      ".npy files (fp16, fp32, int8, int32; C order) or, with --random, from a seeded "
      "generator. Prints each output's shape and min/max/mean, and timing.");
  parser.AddPositional("ID|FILE.mil", &target, "kernel id (or unique prefix) or a MIL file");
  parser.AddRepeated("in", &flags.inputs, "an input: NAME=FILE.npy (repeatable)");
  parser.AddString("out-dir", &flags.out_dir, "write each output to DIR/NAME.npy");
  parser.AddInt("repeat", &flags.repeat, "send N evaluation requests; report p50/p99");
  parser.AddBool("random", &flags.random, "fill inputs not given with seeded random values");
  parser.AddInt("seed", &flags.seed, "seed for --random (default 0)");
  flags.compile.Register(parser);
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  if (flags.repeat < 1 || flags.repeat > 1000000) {
    std::fprintf(stderr, "anectl: --repeat wants 1..1000000\n");
    return kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::KernelInfo kernel;
  if (absl::EndsWith(target, ".mil")) {
    absl::StatusOr<v1::CompileKernelResponse> compiled = CompileFile(ctx, target, flags.compile);
    if (!compiled.ok()) return ctx.Fail(compiled.status());
    kernel = compiled->kernel();
  } else {
    absl::StatusOr<std::string> id = ResolveId(ctx, target);
    if (!id.ok()) return ctx.Fail(id.status());
    absl::StatusOr<v1::KernelInfo> info = (*client)->GetKernel(*id);
    if (!info.ok()) return ctx.Fail(info.status());
    kernel = *std::move(info);
  }
  absl::StatusOr<v1::EvalKernelRequest> request = BuildEvalRequest(kernel, flags);
  if (!request.ok()) return ctx.Fail(request.status());
  std::vector<double> rtt, exec;
  v1::EvalKernelResponse last;
  for (int64_t i = 0; i < flags.repeat; ++i) {
    const absl::Time start = absl::Now();
    absl::StatusOr<v1::EvalKernelResponse> r = (*client)->EvalKernel(*request);
    if (!r.ok()) return ctx.Fail(r.status());
    rtt.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
    exec.push_back(r->timing().execute_us());
    last = *std::move(r);
  }
  if (!flags.out_dir.empty()) {
    if (absl::Status s = WriteOutputs(flags.out_dir, last); !s.ok()) return ctx.Fail(s);
  }
  PrintRun(ctx, last, rtt, exec, kernel.id());
  return kExitOk;
}

int List(CommandContext& ctx, const std::vector<std::string>& args) {
  ArgParser parser("anectl kernel ls [--json]",
                   "Lists the kernels the daemon stores, newest first.");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  absl::StatusOr<v1::ListKernelsResponse> all = (*client)->ListKernels();
  if (!all.ok()) return ctx.Fail(all.status());
  if (ctx.json()) {
    Json kernels = Json::array();
    for (const v1::KernelInfo& k : all->kernels()) kernels.push_back(KernelJson(k));
    std::cout << Json{{"schema_version", 1}, {"kernels", kernels}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << ctx.Bold(absl::StrFormat("%-14s %-18s %-8s %7s %10s %7s  %s", "ID", "NAME",
                                        "BACKEND", "LOADED", "WEIGHTS", "HITS", "SIGNATURE"))
            << "\n";
  for (const v1::KernelInfo& k : all->kernels()) {
    std::cout << absl::StrFormat("%-14s %-18s %-8s %7s %10s %7d  %s\n", k.id().substr(0, 12),
                                 k.name().substr(0, 18), k.backend(), k.loaded() ? "yes" : "no",
                                 FormatBytes(k.weight_bytes()), k.hits(), SignatureString(k));
  }
  if (all->kernels_size() == 0)
    std::cout << "(no kernels; compile one with anectl kernel compile)\n";
  return kExitOk;
}

int Show(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string id;
  ArgParser parser("anectl kernel show ID [--json]", "Shows one kernel's details.");
  parser.AddPositional("ID", &id, "kernel id or unique prefix");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<std::string> full = ResolveId(ctx, id);
  if (!full.ok()) return ctx.Fail(full.status());
  absl::StatusOr<v1::KernelInfo> k = (*ctx.Client())->GetKernel(*full);
  if (!k.ok()) return ctx.Fail(k.status());
  if (ctx.json()) {
    std::cout << Json{{"schema_version", 1}, {"kernel", KernelJson(*k)}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << ctx.Bold(k->id()) << "\n"
            << absl::StrFormat("  %-10s %s\n", "name", k->name())
            << absl::StrFormat("  %-10s %s\n", "signature", SignatureString(*k))
            << absl::StrFormat("  %-10s %s (%s)\n", "backend", k->backend(), k->options())
            << absl::StrFormat("  %-10s %s MIL, %s weights\n", "size", FormatBytes(k->mil_bytes()),
                               FormatBytes(k->weight_bytes()))
            << absl::StrFormat("  %-10s %.2f ms (last), loaded: %s\n", "compile", k->compile_ms(),
                               k->loaded() ? "yes" : "no")
            << absl::StrFormat("  %-10s %d\n", "hits", k->hits());
  return kExitOk;
}

int Remove(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string id;
  ArgParser parser("anectl kernel rm ID", "Deletes a kernel and its stored sources.");
  parser.AddPositional("ID", &id, "kernel id or unique prefix");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<std::string> full = ResolveId(ctx, id);
  if (!full.ok()) return ctx.Fail(full.status());
  if (absl::Status s = (*ctx.Client())->DeleteKernel(*full); !s.ok()) return ctx.Fail(s);
  if (ctx.json()) {
    std::cout << Json{{"schema_version", 1}, {"deleted", *full}}.dump(2) << "\n";
  } else {
    std::cout << "deleted " << *full << "\n";
  }
  return kExitOk;
}

}  // namespace

int RunKernel(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = new std::vector<Command>{
      {"compile", "compile a MIL file (weights streamed in chunks)", Compile},
      {"run", "evaluate a kernel on .npy inputs", Run},
      {"ls", "list stored kernels", List},
      {"show", "show one kernel", Show},
      {"rm", "delete a kernel", Remove},
  };
  return RunSubcommand(ctx, "kernel", *subcommands, args);
}

}  // namespace anerd::anectl
