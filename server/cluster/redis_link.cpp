#include "server/cluster/redis_link.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <asio/posix/stream_descriptor.hpp>

#include "server/log.hpp"

namespace mrd::server::cluster {

/// One connection's readiness waits. Shared by the waits in flight, so that a wait that completes
/// after hiredis freed its context (cleanup() sets `gone`) touches nothing of it.
struct RedisLink::Events : std::enable_shared_from_this<RedisLink::Events> {
  Events(asio::io_context& io, redisAsyncContext* ac) : socket(io, ac->c.fd), context(ac) {}

  asio::posix::stream_descriptor socket;  ///< hiredis's socket; hiredis closes it, not Asio
  redisAsyncContext* context;
  bool reading = false, writing = false;         ///< what hiredis asked for
  bool read_armed = false, write_armed = false;  ///< a wait in flight
  bool gone = false;                             ///< the context was freed

  void arm(bool for_write) {
    bool& armed = for_write ? write_armed : read_armed;
    if (gone || armed || !(for_write ? writing : reading)) return;
    armed = true;
    socket.async_wait(for_write ? asio::posix::descriptor_base::wait_write
                                : asio::posix::descriptor_base::wait_read,
                      [self = shared_from_this(), for_write](const asio::error_code& error) {
                        (for_write ? self->write_armed : self->read_armed) = false;
                        if (error || self->gone || !(for_write ? self->writing : self->reading))
                          return;
                        // Either call may free the context (the peer closed): cleanup() then sets
                        // `gone`.
                        if (for_write) {
                          redisAsyncHandleWrite(self->context);
                        } else {
                          redisAsyncHandleRead(self->context);
                        }
                        self->arm(for_write);
                      });
  }

  // hiredis's hooks; their argument is the holder made by attach().
  static Events& of(void* holder) { return **static_cast<std::shared_ptr<Events>*>(holder); }
  static void add_read(void* holder) {
    of(holder).reading = true;
    of(holder).arm(false);
  }
  static void del_read(void* holder) { of(holder).reading = false; }
  static void add_write(void* holder) {
    of(holder).writing = true;
    of(holder).arm(true);
  }
  static void del_write(void* holder) { of(holder).writing = false; }
  static void cleanup(void* holder) {
    auto* events = static_cast<std::shared_ptr<Events>*>(holder);
    (*events)->gone = true;
    (*events)->socket.release();  // hiredis closes the descriptor; waits in flight are aborted
    delete events;
  }

  static void attach(asio::io_context& io, redisAsyncContext* ac) {
    ac->ev.data = new std::shared_ptr<Events>(std::make_shared<Events>(io, ac));
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
  }
};

namespace {

void reply_trampoline(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<RedisLink::OnReply> callback(static_cast<RedisLink::OnReply*>(privdata));
  (*callback)(static_cast<const redisReply*>(reply));
}

constexpr std::chrono::milliseconds kLongestBackoff{5000};

}  // namespace

RedisLink::RedisLink(asio::io_context& io, RedisAddress address, std::string purpose)
    : io_(io), address_(std::move(address)), purpose_(std::move(purpose)), reconnect_timer_(io) {}

RedisLink::~RedisLink() {
  stop();
}

void RedisLink::start() {
  stopped_ = false;
  connect();
}

void RedisLink::stop() {
  if (stopped_) return;
  stopped_ = true;
  ready_ = false;
  reconnect_timer_.cancel();
  if (auto* context = std::exchange(context_, nullptr)) {
    context->data = nullptr;  // its callbacks no longer reach this link
    redisAsyncFree(context);  // pending commands get their null reply now
  }
}

void RedisLink::connect() {
  if (stopped_) return;
  auto* context = redisAsyncConnect(address_.host.c_str(), address_.port);
  if (!context || context->err) {
    last_error_ = context ? context->errstr : "out of memory";
    if (context) redisAsyncFree(context);
    return schedule_reconnect();
  }
  context_ = context;
  context_->data = this;
  Events::attach(io_, context_);
  redisAsyncSetConnectCallback(context_, on_connect);
  redisAsyncSetDisconnectCallback(context_, on_disconnect);
}

void RedisLink::schedule_reconnect() {
  if (stopped_) return;
  reconnect_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kLongestBackoff);
  reconnect_timer_.async_wait([this](const asio::error_code& error) {
    if (!error) connect();
  });
}

void RedisLink::on_connect(const redisAsyncContext* context, int status) {
  if (auto* link = static_cast<RedisLink*>(context->data)) link->connected(status);
}

void RedisLink::on_disconnect(const redisAsyncContext* context, int status) {
  if (auto* link = static_cast<RedisLink*>(context->data)) link->disconnected(status);
}

void RedisLink::connected(int status) {
  if (status != REDIS_OK) {
    // hiredis frees the context after this returns.
    last_error_ = context_ && context_->errstr[0] ? context_->errstr : "connection refused";
    context_ = nullptr;
    log(Level::kDebug, "redis (", purpose_, "): cannot connect to ", address_.to_string(), ": ",
        last_error_);
    return schedule_reconnect();
  }
  // AUTH and SELECT go first; hiredis answers in order, so the last reply says all went well.
  auto fail = [this](const redisReply* reply, const char* what) {
    last_error_ = std::string(what) + " refused: " + describe(reply);
    log(Level::kError, "redis (", purpose_, "): ", last_error_);
    if (context_) redisAsyncDisconnect(context_);
  };
  if (!address_.password.empty()) {
    std::vector<std::string_view> auth{"AUTH"};
    if (!address_.user.empty()) auth.push_back(address_.user);
    auth.push_back(address_.password);
    send(auth, [fail](const redisReply* reply) {
      if (reply && reply->type == REDIS_REPLY_ERROR) fail(reply, "AUTH");
    });
  }
  const auto database = std::to_string(address_.database);
  send({"SELECT", database}, [this, fail](const redisReply* reply) {
    if (!reply) return;
    if (reply->type == REDIS_REPLY_ERROR) return fail(reply, "SELECT");
    authenticated();
  });
}

void RedisLink::authenticated() {
  const bool again = backoff_ > std::chrono::milliseconds(100);
  ready_ = true;
  backoff_ = std::chrono::milliseconds(100);
  log(again ? Level::kInfo : Level::kDebug, "redis (", purpose_, "): connected to ",
      address_.to_string());
  if (on_ready_) on_ready_();
}

void RedisLink::disconnected(int) {
  // hiredis frees the context after this returns; its pending commands got their null reply.
  if (context_ && context_->errstr[0])
    last_error_ = context_->errstr;
  else
    last_error_ = "connection closed";
  if (ready_) {
    log(Level::kWarn, "redis (", purpose_, "): lost the connection to ", address_.to_string(), " (",
        last_error_, "); reconnecting");
  }
  context_ = nullptr;
  ready_ = false;
  schedule_reconnect();
}

void RedisLink::command(const std::vector<std::string_view>& arguments, OnReply on_reply) {
  if (!ready_ || !context_) return on_reply(nullptr);
  send(arguments, std::move(on_reply));
}

void RedisLink::send(const std::vector<std::string_view>& arguments, OnReply on_reply) {
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
  pointers.reserve(arguments.size());
  lengths.reserve(arguments.size());
  for (const auto& a : arguments) {
    pointers.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* callback = new OnReply(std::move(on_reply));
  if (redisAsyncCommandArgv(context_, reply_trampoline, callback,
                            static_cast<int>(arguments.size()), pointers.data(),
                            lengths.data()) != REDIS_OK) {
    std::unique_ptr<OnReply> owned(callback);
    (*owned)(nullptr);
  }
}

void RedisLink::subscribe(const std::string& channel,
                          std::function<void(std::string_view)> on_message) {
  on_message_ = std::move(on_message);
  if (!ready_ || !context_) return;
  const char* arguments[] = {"SUBSCRIBE", channel.c_str()};
  const std::size_t lengths[] = {9, channel.size()};
  // Called for the SUBSCRIBE's confirmation and then for every message, with the same privdata.
  redisAsyncCommandArgv(
      context_,
      [](redisAsyncContext* context, void* reply_pointer, void*) {
        const auto* reply = static_cast<const redisReply*>(reply_pointer);
        auto* link = static_cast<RedisLink*>(context->data);
        if (!link || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
        const auto* kind = reply->element[0];
        const auto* payload = reply->element[2];
        if (kind->type == REDIS_REPLY_STRING &&
            std::string_view(kind->str, kind->len) == "message" &&
            payload->type == REDIS_REPLY_STRING && link->on_message_) {
          link->on_message_(std::string_view(payload->str, payload->len));
        }
      },
      nullptr, 2, arguments, lengths);
}

std::string RedisLink::describe(const redisReply* reply) {
  if (!reply) return "no reply (the connection was lost)";
  switch (reply->type) {
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING: return std::string(reply->str, std::min<std::size_t>(reply->len, 200));
    case REDIS_REPLY_INTEGER: return "the integer " + std::to_string(reply->integer);
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_ARRAY: return "an array of " + std::to_string(reply->elements);
  }
  return "a reply of type " + std::to_string(reply->type);
}

}  // namespace mrd::server::cluster
