#include "server/service/convert.h"

namespace anerd::service {

void ToProto(const engine::DaemonInfo& info, v1::GetInfoResponse* out) {
  out->set_version(info.version);
  out->set_build(info.build);
  out->set_os(info.os);
  out->set_uptime_seconds(info.uptime_seconds);
  out->set_pid(info.pid);
  out->set_state_dir(info.state_dir);
  out->set_socket(info.socket_path);
  out->set_default_backend(info.default_backend);
  for (const engine::BackendSummary& b : info.backends) {
    v1::BackendInfo* p = out->add_backends();
    p->set_name(b.name);
    p->set_version(b.version);
    p->set_device(b.device);
    p->set_is_default(b.is_default);
    p->set_compile_budget(b.compile_budget);
    p->set_compiles_used(b.compiles_used);
  }
}

}  // namespace anerd::service
