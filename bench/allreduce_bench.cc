// MPI_Allreduce of one float buffer in isolation (issue 24): the reference the all-reduce time of
// a data-parallel training step (anerd-rank's allreduce_ms) is compared with. Run under mpirun:
//   mpirun -np 2 build/bench/allreduce_bench --floats N [--repeat R]
// Rank 0 prints one JSON line: floats, bytes, ranks, median_ms, min_ms, algbw_gbs (bytes / time).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  long long floats = 1 << 20;  // NOLINT(runtime/int): strtoll's type
  int repeat = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--floats") == 0) floats = std::strtoll(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::atoi(argv[i + 1]);
  }
  if (floats <= 0 || floats > (1LL << 31) - 1 || repeat <= 0 || repeat > 10000) {
    std::fprintf(stderr, "allreduce_bench: --floats in [1, 2^31) and --repeat in [1, 10000]\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  std::vector<float> buf(static_cast<size_t>(floats), 1.0f / (rank + 1));
  std::vector<double> ms;
  for (int r = 0; r < repeat + 1; ++r) {  // the first call warms up
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(floats), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    const double t = (MPI_Wtime() - t0) * 1000;
    if (r > 0) ms.push_back(t);
  }
  if (rank == 0) {
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    const double bytes = static_cast<double>(floats) * 4;
    std::printf(
        "{\"floats\": %lld, \"bytes\": %.0f, \"ranks\": %d, \"median_ms\": %.3f, \"min_ms\": "
        "%.3f, \"algbw_gbs\": %.3f}\n",
        floats, bytes, ranks, median, ms.front(), bytes / (median * 1e6));
  }
  MPI_Finalize();
  return 0;
}
