# Owned by the codec benchmark: tblog-codec-bench, PNG encoders (libpng+zlib,
# libspng, libdeflate, ISA-L igzip) and CRC-32C implementations side by side
# (issue 13). libspng and libdeflate are benchmark-only dependencies
# (scripts/install-deps.sh installs them with the test packages).
pkg_check_modules(BENCH_SPNG IMPORTED_TARGET spng)
pkg_check_modules(BENCH_LIBDEFLATE IMPORTED_TARGET libdeflate)
if(BENCH_SPNG_FOUND AND BENCH_LIBDEFLATE_FOUND)
  add_executable(tblog_codec_bench codec_bench.cc png_candidates.cc machine.cc)
  set_target_properties(tblog_codec_bench PROPERTIES OUTPUT_NAME tblog-codec-bench)
  target_link_libraries(tblog_codec_bench PRIVATE tblog_engine_media tblog_engine_io
    PNG::PNG PkgConfig::ISAL PkgConfig::BENCH_SPNG PkgConfig::BENCH_LIBDEFLATE
    CLI11::CLI11 absl::strings absl::str_format)
  tblog_set_warnings(tblog_codec_bench)
else()
  message(STATUS "tblog-codec-bench skipped: libspng-dev or libdeflate-dev is not installed")
endif()
