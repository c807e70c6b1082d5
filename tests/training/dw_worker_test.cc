// DwWorker (server/training/dw_worker.h): tasks run in submission order, and each holds a CPU seat
// (server/backend/cpu_seats.h) while it runs, so the CPU backend's pool leaves its helper out
// meanwhile (two compute threads on two cores, not three); an idle worker holds none.
#include "server/training/dw_worker.h"

#include <vector>

#include "gtest/gtest.h"
#include "server/backend/cpu_seats.h"

namespace anerd::training {
namespace {

TEST(DwWorkerTest, TasksRunInOrderEachHoldingACpuSeat) {
  std::vector<int> order, seats;
  {
    DwWorker worker;
    for (int i = 0; i < 3; ++i) {
      worker.Submit([&order, &seats, i] {
        order.push_back(i);
        seats.push_back(backend::CpuSeatsHeld());
      });
    }
    worker.Wait();
    EXPECT_EQ(backend::CpuSeatsHeld(), 0);  // given back once the task is done
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(seats, (std::vector<int>{1, 1, 1}));
}

TEST(DwWorkerTest, ThrowingTaskGivesItsSeatBack) {
  DwWorker worker;
  worker.Submit([] { throw 7; });
  EXPECT_THROW(worker.Wait(), int);
  EXPECT_EQ(backend::CpuSeatsHeld(), 0);
}

}  // namespace
}  // namespace anerd::training
