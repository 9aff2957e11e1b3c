#include "common/drop_reason.h"

namespace machnet {

const char* drop_reason_name(DropReason r) {
  static const char* const kNames[] = {
#define MACHNET_X(name, str) str,
      MACHNET_DROP_REASONS(MACHNET_X)
#undef MACHNET_X
  };
  auto i = static_cast<size_t>(r);
  return i < kDropReasonCount ? kNames[i] : "unknown";
}

}  // namespace machnet
