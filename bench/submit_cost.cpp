// submit_cost: acknowledged SUBMITs per second on one connection, one at a time, against a
// server already running: what durability costs per job.
//   submit_cost HOST:PORT [COUNT]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "client/connection.hpp"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const int count = argc > 2 ? std::atoi(argv[2]) : 3000;
  auto connection = mrd::client::Connection::connect(mrd::client::parse_server_address(argv[1]));
  connection.hello();
  mrd::protocol::SubmitRequest request{
      "words", "sum", {}, mrd::protocol::Documents{{{"d", "a tiny job"}}}};
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i)
    connection.submit(request);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::printf("%d submits in %.3f s: %.0f /s, %.1f us each\n", count, elapsed.count(),
              count / elapsed.count(), 1e6 * elapsed.count() / count);
}
