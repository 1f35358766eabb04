# Every dependency comes from Debian 12 packages (scripts/install-deps.sh).
find_package(Torch REQUIRED)
find_package(fmt REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(Threads REQUIRED)
find_package(JPEG REQUIRED)   # libjpeg-turbo
find_package(PNG REQUIRED)
find_package(GIF REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp)
# Animated WebP: the demuxer and WebPAnimDecoder (libwebp-dev ships both).
pkg_check_modules(WEBPDEMUX REQUIRED IMPORTED_TARGET libwebpdemux)
# PCRE2 with Unicode properties: the pre-tokenizer regexes of Qwen2/GPT-2/CLIP.
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# ICU: NFC, Unicode lower-casing and character categories for the tokenizers.
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-uc icu-i18n)
# SentencePiece: the tokenizer.model / spiece.model of InternLM2, Llama-2-style and SigLIP folders.
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
# cpp-httplib (libcpp-httplib-dev): the HTTP server of `imgjudge serve` and the client of its
# tests and load benchmark; never linked by libimgjudge. Its pkg-config flags define the
# OpenSSL, zlib and Brotli switches the Debian library was built with, and those change the
# layout of its types: every user must compile with them.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
# PLplot (with its cairo driver at run time): the PNG plots of `imgjudge eval`.
pkg_check_modules(PLPLOT REQUIRED IMPORTED_TARGET plplot)
if(IMGJUDGE_BUILD_TESTS)
  find_package(Catch2 REQUIRED)
endif()
