// The --redis URL, parsed without a socket.
#include <gtest/gtest.h>

#include "server/cluster/redis_address.hpp"

namespace mrd::server::cluster {
namespace {

RedisAddress parse(std::string_view url) {
  std::string error;
  auto address = parse_redis_url(url, error);
  if (!address) throw std::runtime_error(error);
  return *address;
}

std::string refusal(std::string_view url) {
  std::string error;
  EXPECT_FALSE(parse_redis_url(url, error)) << url;
  return error;
}

TEST(RedisAddress, HostAndPort) {
  const auto address = parse("redis://127.0.0.1:6380");
  EXPECT_EQ(address.host, "127.0.0.1");
  EXPECT_EQ(address.port, 6380);
  EXPECT_EQ(address.database, 0u);
  EXPECT_EQ(address.user, "");
  EXPECT_EQ(address.password, "");
  EXPECT_EQ(address.to_string(), "127.0.0.1:6380/0");
}

TEST(RedisAddress, CredentialsAndDatabase) {
  const auto address = parse("redis://mrd:p@ss:w@rd@redis.example:6379/3");
  EXPECT_EQ(address.user, "mrd");
  EXPECT_EQ(address.password, "p@ss:w@rd");  // up to the last '@'
  EXPECT_EQ(address.host, "redis.example");
  EXPECT_EQ(address.database, 3u);
  EXPECT_EQ(address.to_string(), "redis.example:6379/3");  // no password in logs
  EXPECT_EQ(parse("redis://:secret@h:1").password, "secret");
  EXPECT_EQ(parse("redis://:secret@h:1").user, "");
}

TEST(RedisAddress, MalformedUrlsSayWhatIsWrong) {
  EXPECT_NE(refusal("http://h:1").find("starts with redis://"), std::string::npos);
  EXPECT_NE(refusal("redis://h").find("HOST:PORT"), std::string::npos);
  EXPECT_NE(refusal("redis://:6379").find("HOST:PORT"), std::string::npos);
  EXPECT_NE(refusal("redis://h:0").find("port"), std::string::npos);
  EXPECT_NE(refusal("redis://h:65536").find("port"), std::string::npos);
  EXPECT_NE(refusal("redis://h:12x").find("port"), std::string::npos);
  EXPECT_NE(refusal("redis://h:1/x").find("database"), std::string::npos);
  EXPECT_NE(refusal("redis://user@h:1").find("credentials"), std::string::npos);
}

}  // namespace
}  // namespace mrd::server::cluster
