// The endings every machnet program's getopt_long loop shares: --version,
// and a clear error for what getopt rejected or did not expect.
#pragma once

#include <getopt.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

namespace machnet::cli {

// getopt_long value of --version (--help is 'h', as -h).
constexpr int kVersion = 0x100;

// "PROG (machnet) VERSION[, extra]" on stdout. Returns 0, the exit status.
inline int version(const char* prog, const char* extra = nullptr) {
  std::printf("%s (machnet) %s%s%s\n", prog, PACKAGE_VERSION, extra ? ", " : "",
              extra ? extra : "");
  return 0;
}

// An option's value: a decimal integer in lo..hi into *out. Otherwise false
// and one line on stderr naming the program, the option and the range.
template <typename T>
bool number(const char* prog, const char* what, const char* s, unsigned long long lo,
            unsigned long long hi, T* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = s[0] == '-' ? 0 : std::strtoull(s, &end, 10);
  if (s[0] == '-' || errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "%s: %s must be %llu..%llu, got '%s'\n", prog, what, lo, hi, s);
    return false;
  }
  *out = static_cast<T>(v);
  return true;
}

// The same for a real number (seconds and such) in lo..hi.
inline bool real(const char* prog, const char* what, const char* s, double lo, double hi,
                 double* out) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    std::fprintf(stderr, "%s: %s must be %g..%g, got '%s'\n", prog, what, lo, hi, s);
    return false;
  }
  *out = v;
  return true;
}

// After getopt_long returned '?' or ':': names the argument it rejected.
// Returns 2, the exit status of a usage error.
inline int unknown_option(const char* prog, int argc, char** argv) {
  std::fprintf(stderr, "%s: unknown option or missing value: '%s' (try --help)\n", prog,
               optind > 0 && optind <= argc ? argv[optind - 1] : "?");
  return 2;
}

// After the loop: operands nobody expected. Returns 2 when there are some.
inline int no_operands(const char* prog, int argc, char** argv) {
  if (optind >= argc) return 0;
  std::fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", prog, argv[optind]);
  return 2;
}

// The options every program has, for the end of its switch: 'h' prints
// usage(stdout) and returns 0, kVersion prints the version and returns 0,
// anything else is a usage error (returns 2).
inline int standard_option(int c, const char* prog, void (*usage)(FILE*), const char* extra,
                           int argc, char** argv) {
  if (c == 'h') {
    usage(stdout);
    return 0;
  }
  if (c == kVersion) return version(prog, extra);
  return unknown_option(prog, argc, argv);
}

}  // namespace machnet::cli
