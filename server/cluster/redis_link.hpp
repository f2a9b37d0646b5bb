// RedisLink: one connection to Redis, driven by the server's io_context.
//
// hiredis does the wire format (RESP) and keeps the queue of replies in order; this file tells it
// when its socket can be read or written. hiredis asks for readiness through five hooks (addRead,
// delRead, addWrite, delWrite, cleanup); each add arms one `async_wait` on an Asio descriptor that
// wraps hiredis's socket, and each readiness calls redisAsyncHandleRead or redisAsyncHandleWrite.
// So the network thread never blocks on Redis: a command is queued, and its callback runs when the
// reply has arrived, in the order the commands were sent.
//
// A link reconnects by itself, with back-off (100 ms doubling to 5 s), whenever the connection is
// lost or cannot be made. Commands sent while it is down, and commands still waiting for a reply
// when it drops, get a null reply: the caller decides what that means (a SUBMIT answers
// UNAVAILABLE; a lease renewal tries again at its next tick).
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/cluster/redis_address.hpp"

struct redisAsyncContext;
struct redisReply;

namespace mrd::server::cluster {

class RedisLink {
 public:
  /// A command's reply, valid only during the call; null if the link was down or went down
  /// before the reply came.
  using OnReply = std::function<void(const redisReply* reply)>;

  /// `purpose` names the link in logs ("commands", "tasks", "events").
  RedisLink(asio::io_context& io, RedisAddress address, std::string purpose);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  /// Connects now and whenever the connection is lost, until stop().
  void start();
  /// Closes the connection; pending commands get a null reply. Idempotent.
  void stop();

  /// Connected, and AUTH and SELECT done: commands go out now.
  bool ready() const { return ready_; }
  /// What the last failure to connect, or the last drop, said (for UNAVAILABLE's message).
  const std::string& last_error() const { return last_error_; }

  /// Called each time the link becomes ready (after start() and after every reconnection).
  void on_ready(std::function<void()> callback) { on_ready_ = std::move(callback); }

  /// Sends one command (arguments as they are, binary-safe). `on_reply` is called once.
  void command(const std::vector<std::string_view>& arguments, OnReply on_reply);
  void command(std::initializer_list<std::string_view> arguments, OnReply on_reply) {
    command(std::vector<std::string_view>(arguments), std::move(on_reply));
  }

  /// SUBSCRIBEs to `channel` (on a link that does nothing else): `on_message` gets each message
  /// published there. Call from on_ready(): a reconnection needs a new SUBSCRIBE.
  void subscribe(const std::string& channel, std::function<void(std::string_view)> on_message);

  /// The first `limit` bytes of an error reply's text, or of what a reply of the wrong type was.
  static std::string describe(const redisReply* reply);

 private:
  struct Events;  // the Asio side of hiredis's hooks (redis_link.cpp)

  /// Queues a command on the connection, ready or not (AUTH and SELECT go before it is).
  void send(const std::vector<std::string_view>& arguments, OnReply on_reply);
  void connect();
  void schedule_reconnect();
  void connected(int status);
  void disconnected(int status);
  void authenticated();

  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);

  asio::io_context& io_;
  RedisAddress address_;
  std::string purpose_;
  asio::steady_timer reconnect_timer_;
  std::chrono::milliseconds backoff_{100};
  redisAsyncContext* context_ = nullptr;  ///< null while not connected
  bool ready_ = false;
  bool stopped_ = true;
  std::string last_error_ = "not connected yet";
  std::function<void()> on_ready_;
  std::function<void(std::string_view)> on_message_;  ///< for subscribe()
};

}  // namespace mrd::server::cluster
