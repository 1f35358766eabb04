#include <catch2/catch.hpp>

#include <string>

#include "util/sha256.hpp"

using imgjudge::util::Sha256;
using imgjudge::util::sha256_hex;

TEST_CASE("sha256 matches the FIPS 180-4 test vectors", "[unit][sha256]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("sha256 gives the same digest however the input is split", "[unit][sha256]") {
  std::string million(1000000, 'a');
  Sha256 whole;
  whole.update(million);
  Sha256 pieces;
  for (std::size_t i = 0; i < million.size(); i += 777) {
    pieces.update(million.data() + i, std::min<std::size_t>(777, million.size() - i));
  }
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  CHECK(whole.hex_digest() == expected);
  CHECK(pieces.hex_digest() == expected);
}
