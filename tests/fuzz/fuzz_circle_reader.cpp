// libFuzzer target over the hostile-file reader (csrc/exporter/reader/circle_reader.cpp).
//
// read_model's contract is: any byte string either parses or raises ReadError; it never crashes.
// So only ReadError is caught here. Any other exception escapes and aborts (libFuzzer reports it
// as a crash, "deadly signal"), and so do ASan/UBSan reports, timeouts and out-of-memory: each of
// those is a finding, i.e. a bug in the reader, not in this target.
#include <cstddef>
#include <cstdint>
#include <string>

#include "exporter/reader/circle_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string source = "<fuzz>";
  try {
    torch_circle::reader::ModelInfo info = torch_circle::reader::read_model(data, size, source);
    // Touch the result so nothing is optimised away.
    volatile size_t n = info.subgraphs.size();
    (void)n;
  } catch (const torch_circle::reader::ReadError&) {
    // Expected: a malformed file is rejected with a message.
  }
  return 0;
}
