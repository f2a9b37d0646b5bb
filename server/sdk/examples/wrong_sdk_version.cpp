// A plugin that claims another SDK version: mrd must refuse to load it (tests/plugin_test.cpp).
#include "mrd_plugin.h"

extern "C" MRD_PLUGIN_EXPORT uint32_t mrd_plugin_sdk_version(void) {
  return MRD_PLUGIN_SDK_VERSION + 1;
}

extern "C" MRD_PLUGIN_EXPORT const mrd_plugin_job* mrd_plugin_jobs(size_t* count) {
  *count = 0;
  return nullptr;
}
