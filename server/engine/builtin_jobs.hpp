// The built-in jobs, one per source file; job_catalog.cpp lists them for lookup.
#pragma once

#include "server/engine/job_kind.hpp"

namespace mrd::engine {

/// words + sum: how often each word occurs (word_count.cpp).
const JobKind& word_count_job();
/// bigrams + sum: how often each pair of consecutive words occurs (bigram_count.cpp).
const JobKind& bigram_count_job();
/// index + postings: which documents each word occurs in (inverted_index.cpp).
const JobKind& inverted_index_job();
/// numbers + stats: count, mean, median, mode, min and max (statistics.cpp).
const JobKind& statistics_job();
/// matmul + rows: the matrix product A x B (matrix_multiply.cpp).
const JobKind& matrix_multiply_job();

}  // namespace mrd::engine
