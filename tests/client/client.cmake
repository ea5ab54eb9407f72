# The C++ client: unit tests without a daemon, end-to-end tests against the
# real tblogd, and a test that installs the package and builds a consumer.
tblog_add_test(batch_builder_test SOURCES client/batch_builder_test.cc LIBS tblog_client)
target_include_directories(batch_builder_test PRIVATE ${PROJECT_SOURCE_DIR}/client/src)
tblog_add_test(writer_test SOURCES client/writer_test.cc LIBS tblog_client)
