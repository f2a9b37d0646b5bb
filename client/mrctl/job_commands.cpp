#include "client/mrctl/job_commands.hpp"

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "client/client_error.hpp"
#include "client/documents.hpp"
#include "client/input_file.hpp"
#include "client/json_output.hpp"
#include "client/matrix_check.hpp"
#include "client/matrix_file.hpp"
#include "client/mrctl/exit_codes.hpp"
#include "client/mrctl/session.hpp"
#include "client/npy.hpp"
#include "client/numbers_file.hpp"
#include "client/text_matrix.hpp"
#include "client/text_output.hpp"
#include "protocol/limits.hpp"

namespace mrd::mrctl {
namespace {

/// Prints any result in the text or JSON form `output` asks for.
void print_result(const protocol::JobResult& result, const OutputOptions& output) {
  print(output.json ? client::result_json(result, output.entries())
                    : client::result_text(result, output.entries()));
}

/// A matrix file for matmul: numpy.save's float64 matrix is left in its file and sent from there
/// (client::NpyValues), its shape alone in the request; any other file is loaded.
struct MatrixInput {
  protocol::Matrix matrix;
  std::optional<client::NpyValues> file;

  static MatrixInput open(const std::string& path, bool needs_values) {
    if (!needs_values && client::is_npy_path(path)) {
      if (auto file = client::open_npy_values(path)) {
        protocol::Matrix shape{file->rows, file->cols, {}};
        return {std::move(shape), std::move(file)};
      }
    }
    return {client::load_matrix_file(path), std::nullopt};
  }

  client::PayloadFile payload_file(const std::string& path) const {
    if (!file) return {};
    return {file->fd, file->offset, file->bytes, path};
  }
};

/// A job over documents (wordcount, bigrams, index).
struct DocumentsCommand {
  std::vector<std::string> files;
  OutputOptions output;
};

void add_documents_command(CLI::App& app, GlobalOptions& global, Runner& run,
                           const std::string& name, const std::string& description,
                           const std::string& mapper, const std::string& reducer, bool counts) {
  auto options = std::make_shared<DocumentsCommand>();
  auto* command = app.add_subcommand(name, description);
  command
      ->add_option("FILE", options->files, "Files to read; each is one document, named by its path")
      ->required()
      ->default_str("");
  add_submit_options(*command, global.submit);
  add_output_options(*command, options->output, counts);
  command->callback([&global, &run, options, mapper, reducer] {
    run = [&global, options, mapper, reducer] {
      // Inputs are opened before connecting: a typo in a file name costs no server round trip.
      // Big files are not read yet: they are sent as they are read.
      client::OpenDocuments opened(options->files);
      protocol::SubmitRequest request{mapper, reducer, {}, std::move(opened.documents)};
      if (auto result = run_job(global, std::move(request), opened.files)) {
        print_result(*result, options->output);
      }
      return kExitSuccess;
    };
  });
}

struct StatsCommand {
  std::string file;
  OutputOptions output;
};

void add_stats_command(CLI::App& app, GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<StatsCommand>();
  auto* command = app.add_subcommand(
      "stats", "Count, mean, median, mode, min and max of the numbers in FILE (job numbers+stats)");
  command->add_option("FILE", options->file, "Numbers separated by any whitespace")->required();
  add_submit_options(*command, global.submit);
  add_output_options(*command, options->output, false);
  command->callback([&global, &run, options] {
    run = [&global, options] {
      protocol::SubmitRequest request{
          "numbers", "stats", {}, protocol::Numbers{client::load_numbers_file(options->file)}};
      if (auto result = run_job(global, std::move(request))) {
        print_result(*result, options->output);
      }
      return kExitSuccess;
    };
  });
}

struct MatmulCommand {
  std::vector<std::string> files;  ///< A and B, unless --random
  std::uint64_t random = 0;        ///< side of random square inputs; 0: read the files
  std::uint64_t seed = 1;
  bool verify = false;
  std::string out;
};

std::string shape(const protocol::Matrix& m) {
  return std::to_string(m.rows) + "x" + std::to_string(m.cols);
}

/// Compares the server's product with one computed here; prints the verdict.
int verify_product(const protocol::MatrixPair& inputs, const protocol::Matrix& product) {
  const auto expected = client::multiply(inputs.a, inputs.b);
  // Rounding differs with summation order; the error of a length-n dot product grows with n.
  const double tolerance = 1e-9 * static_cast<double>(std::max<std::uint64_t>(1, inputs.a.cols));
  const auto d = client::compare_matrices(product, expected, tolerance);
  if (!d.same_shape) {
    print("MISMATCH: the server's product is " + shape(product) + ", expected " + shape(expected) +
          "\n");
    return kExitJobFailed;
  }
  if (!d.within_tolerance) {
    print("MISMATCH at (" + std::to_string(d.worst_row) + ", " + std::to_string(d.worst_col) +
          "): got " + client::format_double(d.worst_got) + ", expected " +
          client::format_double(d.worst_expected) + "; max abs error " +
          client::format_double(d.max_abs_error) + "\n");
    return kExitJobFailed;
  }
  char line[64];
  std::snprintf(line, sizeof line, "verified: max abs error %.3g\n", d.max_abs_error);
  print(line);
  return kExitSuccess;
}

void add_matmul_command(CLI::App& app, GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<MatmulCommand>();
  auto* command = app.add_subcommand(
      "matmul",
      "Multiply matrix A by matrix B (job matmul+rows). A file ending in .npy is read as NumPy "
      "binary, any other as text in numpy.savetxt's layout ('#' comments, whitespace or commas)");
  auto* files = command->add_option("FILE", options->files, "Matrix files A and B")
                    ->expected(2)
                    ->default_str("");
  auto* random =
      command
          ->add_option("--random", options->random,
                       "Instead of files, multiply two random NxN matrices (uniform in [-1, 1))")
          ->check(CLI::Range(std::uint64_t{1}, protocol::kMaxMatrixSide))
          ->type_name("N")
          ->default_str("")
          ->excludes(files);
  command->add_option("--seed", options->seed, "Seed of the random matrices (std::mt19937_64)")
      ->needs(random);
  command->add_flag("--verify", options->verify,
                    "Also multiply locally and compare (relative tolerance 1e-9 * N); exit 1 on "
                    "a mismatch");
  command
      ->add_option("--out", options->out,
                   "Write the product to this file (.npy: NumPy binary, else text) instead of "
                   "printing it")
      ->type_name("FILE");
  add_submit_options(*command, global.submit);
  command->callback([&global, &run, options] {
    run = [&global, options]() -> int {
      protocol::MatrixPair inputs;
      // A's and B's values sent from their .npy files, when --verify does not need them here.
      std::optional<MatrixInput> a, b;
      std::vector<client::PayloadFile> payload_files;
      if (options->random > 0) {
        inputs = client::random_matrix_pair(options->random, options->seed);
      } else if (options->files.size() == 2) {
        a.emplace(MatrixInput::open(options->files[0], options->verify));
        b.emplace(MatrixInput::open(options->files[1], options->verify));
        payload_files = {a->payload_file(options->files[0]), b->payload_file(options->files[1])};
        inputs.a = std::move(a->matrix);
        inputs.b = std::move(b->matrix);
      } else {
        throw client::ClientError(client::ErrorKind::kUsage,
                                  "matmul needs two matrix files A B, or --random N");
      }
      if (inputs.a.cols != inputs.b.rows) {
        throw client::ClientError(client::ErrorKind::kInput,
                                  "cannot multiply a " + shape(inputs.a) + " matrix by a " +
                                      shape(inputs.b) + " one: A's columns must equal B's rows");
      }
      protocol::SubmitRequest request{"matmul", "rows", {}, {}};
      // --verify needs the inputs after the submit; otherwise they need not be copied.
      if (options->verify) {
        request.input = inputs;
      } else {
        request.input = std::move(inputs);
      }
      // A product for a .npy file is written from where it was received, not decoded first
      // (--verify needs its values here).
      client::MatrixResultSink to_npy_file;
      if (client::is_npy_path(options->out) && !options->verify) {
        to_npy_file = [path = options->out](const protocol::MatrixResultView& product) {
          client::write_output_file(
              path, {client::npy_header(product.rows, product.cols), product.values});
        };
      }
      const auto result = run_job(global, std::move(request), payload_files, to_npy_file);
      if (!result) return kExitSuccess;
      const auto* product = std::get_if<protocol::Matrix>(&*result);
      if (product == nullptr) {
        throw client::ClientError(client::ErrorKind::kProtocol,
                                  "the server answered a matmul job with a non-matrix result");
      }
      if (!options->out.empty()) {
        if (!to_npy_file) client::save_matrix_file(options->out, *product);
        print(shape(*product) + " matrix written to " + options->out + "\n");
      } else if (options->random > 0) {
        // Random products are for testing; nobody wants N*N numbers on a terminal.
        print(shape(*product) + " matrix (give --out FILE to keep it)\n");
      } else {
        print(client::format_text_matrix(*product));
      }
      return options->verify ? verify_product(inputs, *product) : kExitSuccess;
    };
  });
}

struct SubmitCommand {
  std::string mapper;
  std::string reducer;
  std::vector<std::string> documents;
  std::string numbers;
  std::vector<std::string> matrices;
  OutputOptions output;
};

void add_submit_command(CLI::App& app, GlobalOptions& global, Runner& run) {
  auto options = std::make_shared<SubmitCommand>();
  auto* command = app.add_subcommand(
      "submit",
      "Submit any mapper and reducer over one kind of input. Built in: words+sum, bigrams+sum, "
      "index+postings (documents), numbers+stats (numbers), matmul+rows (matrices)");
  command->add_option("--mapper", options->mapper, "Mapper name")->required();
  command->add_option("--reducer", options->reducer, "Reducer name")->required();
  auto* documents =
      command
          ->add_option("--documents", options->documents, "Document files (input kind: documents)")
          ->type_name("FILE")
          ->default_str("");
  auto* numbers =
      command->add_option("--numbers", options->numbers, "A numbers file (input kind: numbers)")
          ->type_name("FILE");
  auto* matrices = command
                       ->add_option("--matrices", options->matrices,
                                    "Matrix files A B (input kind: matrix pair)")
                       ->type_name("FILE")
                       ->expected(2)
                       ->default_str("");
  documents->excludes(numbers)->excludes(matrices);
  numbers->excludes(matrices);
  add_submit_options(*command, global.submit);
  add_output_options(*command, options->output, true);
  command->callback([&global, &run, options, documents, numbers, matrices] {
    run = [&global, options, documents, numbers, matrices] {
      protocol::SubmitRequest request{options->mapper, options->reducer, {}, {}};
      if (documents->count() > 0) {
        request.input = client::load_documents(options->documents);
      } else if (numbers->count() > 0) {
        request.input = protocol::Numbers{client::load_numbers_file(options->numbers)};
      } else if (matrices->count() > 0) {
        request.input = protocol::MatrixPair{client::load_matrix_file(options->matrices[0]),
                                             client::load_matrix_file(options->matrices[1])};
      } else {
        throw client::ClientError(client::ErrorKind::kUsage,
                                  "submit needs an input: --documents, --numbers or --matrices");
      }
      if (auto result = run_job(global, std::move(request))) {
        print_result(*result, options->output);
      }
      return kExitSuccess;
    };
  });
}

}  // namespace

void add_job_commands(CLI::App& app, GlobalOptions& global, Runner& run) {
  add_documents_command(app, global, run, "wordcount",
                        "Count the words in FILE... and print the most frequent (job words+sum)",
                        "words", "sum", true);
  add_documents_command(app, global, run, "bigrams",
                        "Count adjacent word pairs in FILE... and print the most frequent (job "
                        "bigrams+sum)",
                        "bigrams", "sum", true);
  add_documents_command(app, global, run, "index",
                        "Build an inverted index of FILE...: each word and the files it occurs in "
                        "(job index+postings)",
                        "index", "postings", false);
  add_stats_command(app, global, run);
  add_matmul_command(app, global, run);
  add_submit_command(app, global, run);
}

}  // namespace mrd::mrctl
