// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing and TensorBoard event
// files use it, and TFRecord's masked form. Pure functions; thread-safe.
#ifndef ANERD_SERVER_METRICS_CRC32C_H_
#define ANERD_SERVER_METRICS_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace anerd::metrics {

// CRC-32C of `data`, continuing from `crc` (0 for a fresh checksum). Crc32c("123456789") is
// 0xE3069283.
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

// TFRecord's mask: rotate right by 15 bits and add 0xa282ead8, so a CRC of data that itself holds
// CRCs does not degenerate.
inline uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace anerd::metrics

#endif  // ANERD_SERVER_METRICS_CRC32C_H_
