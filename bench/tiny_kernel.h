// The tiny kernel the RPC benches evaluate: y = 0.5 * x on a [1, 64, 1, 16] fp16 tensor (2 KiB in
// and out), and the EvalKernel request for it. Header-only; benches only.
#ifndef ANERD_BENCH_TINY_KERNEL_H_
#define ANERD_BENCH_TINY_KERNEL_H_

#include <string>

#include "proto/anerd/v1/anerd.pb.h"

namespace anerd::bench {

inline constexpr char kTinyMil[] = R"(program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 16]> x) {
        fp16 s = const()[name = string("s"), val = fp16(0.5)];
        tensor<fp16, [1, 64, 1, 16]> y = mul(x = x, y = s)[name = string("y")];
    } -> (y);
}
)";

// An evaluation of the compiled tiny kernel `kernel_id` on an input of 0x0101 halves.
inline v1::EvalKernelRequest TinyEvalRequest(const std::string& kernel_id) {
  v1::EvalKernelRequest req;
  req.set_kernel_id(kernel_id);
  v1::Tensor* t = req.add_inputs();
  t->set_name("x");
  t->set_dtype("fp16");
  for (int d : {1, 64, 1, 16}) t->add_shape(d);
  t->set_data(std::string(64 * 16 * 2, '\1'));
  return req;
}

}  // namespace anerd::bench

#endif  // ANERD_BENCH_TINY_KERNEL_H_
