# Tests of the daemon's name validation and record converter.
#
# The tests link tblog_daemon_convert, just names.cc and record_converter.cc
# (which tblog_daemon compiles too): they depend on the engine and the API
# protos only, not on the gRPC side of the daemon.
add_library(tblog_daemon_convert
  ${PROJECT_SOURCE_DIR}/server/daemon/names.cc
  ${PROJECT_SOURCE_DIR}/server/daemon/record_converter.cc)
target_include_directories(tblog_daemon_convert PUBLIC ${PROJECT_SOURCE_DIR}/server)
target_link_libraries(tblog_daemon_convert PUBLIC tblog_engine tblog_api_proto
  absl::status absl::statusor absl::strings absl::str_format absl::time)
tblog_set_warnings(tblog_daemon_convert)

tblog_add_test(names_test SOURCES daemon/names_test.cc LIBS tblog_daemon_convert)
tblog_add_test(record_converter_test SOURCES daemon/record_converter_test.cc
  LIBS tblog_daemon_convert)
