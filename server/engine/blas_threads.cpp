#include "server/engine/blas_threads.hpp"

#include <cblas.h>

#include <algorithm>

namespace mrd::engine {

void set_blas_threads(int threads) {
  openblas_set_num_threads(std::max(1, threads));
}

}  // namespace mrd::engine
