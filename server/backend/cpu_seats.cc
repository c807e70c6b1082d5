#include "server/backend/cpu_seats.h"

#include <atomic>

namespace anerd::backend {
namespace {

std::atomic<int> g_seats{0};

}  // namespace

ScopedCpuSeat::ScopedCpuSeat() { g_seats.fetch_add(1, std::memory_order_relaxed); }
ScopedCpuSeat::~ScopedCpuSeat() { g_seats.fetch_sub(1, std::memory_order_relaxed); }

int CpuSeatsHeld() { return g_seats.load(std::memory_order_relaxed); }

}  // namespace anerd::backend
