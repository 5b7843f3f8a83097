// libFuzzer's entry for programs that have their own main (in libclang_rt.fuzzer, linked by
// -sanitize=fuzzer). SwiftPM gives every executable a main of its own, so the harness calls this
// instead of relying on libFuzzer's main.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
