# The C++ client: unit tests without a daemon, end-to-end tests against the
# real tblogd, and a test that installs the package and builds a consumer.
tblog_add_test(batch_builder_test SOURCES client/batch_builder_test.cc LIBS tblog_client)
target_include_directories(batch_builder_test PRIVATE ${PROJECT_SOURCE_DIR}/client/src)
tblog_add_test(tensor_buffer_pool_test SOURCES client/tensor_buffer_pool_test.cc LIBS tblog_client)
target_include_directories(tensor_buffer_pool_test PRIVATE ${PROJECT_SOURCE_DIR}/client/src)
tblog_add_test(writer_test SOURCES client/writer_test.cc LIBS tblog_client)
# Against an in-process fake daemon that breaks streams and loses acks.
# Also checks the engine's IsRetryable (client/src) against tblog.proto's list.
tblog_add_test(writer_protocol_test SOURCES client/writer_protocol_test.cc
  LIBS tblog_client tblog_base gRPC::grpc++ absl::synchronization)
target_include_directories(writer_protocol_test PRIVATE ${PROJECT_SOURCE_DIR}/client/src)
target_compile_definitions(writer_protocol_test PRIVATE
  TBLOG_PROTO_FILE="${PROJECT_SOURCE_DIR}/proto/tblog/v1/tblog.proto")
# Runs the real tblogd (tests/support/daemon_process.h) and reads its files back.
tblog_add_test(writer_e2e_test SOURCES client/writer_e2e_test.cc
  LIBS tblog_client tblog_engine tblog_daemon_process)
add_dependencies(writer_e2e_test tblog_train_example tblogd)
# Writer::Open's first OpenRun tried again while no daemon listens, or the
# daemon is killed and restarted, within WriterOptions::open_timeout.
tblog_add_test(writer_open_e2e_test SOURCES client/writer_open_e2e_test.cc
  LIBS tblog_client tblog_engine tblog_daemon_process)
add_dependencies(writer_open_e2e_test tblogd)

# find_package(tblog) from an install prefix. Installs only the tblog_client
# component, so it needs tblog_client built, nothing else.
add_test(NAME client_install_test
  COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR}
    -DCONSUMER_DIR=${CMAKE_CURRENT_SOURCE_DIR}/client/consumer
    -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/client_install_test
    -P ${CMAKE_CURRENT_SOURCE_DIR}/client/install_test.cmake)
set_tests_properties(client_install_test PROPERTIES TIMEOUT 600)
# Append-only recovery and many daemons on one run, against real tblogd
# processes killed with SIGKILL, read the way TensorBoard tails files.
tblog_add_test(recovery_e2e_test SOURCES client/recovery_e2e_test.cc
  LIBS tblog_client tblog_engine tblog_daemon tblog_daemon_process tblog_upstream_fixture)
add_dependencies(recovery_e2e_test tblogd)
