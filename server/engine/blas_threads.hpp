// How many threads the BLAS library may use for one matrix product.
//
// OpenBLAS starts a thread per core and splits every large product across them. A worker pool
// already runs one map task per core, so each worker should keep BLAS to one thread (or set
// OPENBLAS_NUM_THREADS=1 in the workers' environment, which also stops the idle threads from
// being created at all).
#pragma once

namespace mrd::engine {

/// Lets BLAS use at most `threads` (>= 1) threads in this process from now on.
void set_blas_threads(int threads);

}  // namespace mrd::engine
