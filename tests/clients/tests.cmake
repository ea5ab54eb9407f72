# The Node and Go clients, tested end to end against the real tblogd (spawned
# by each test on a unix socket in a temporary directory). Their toolchains and
# packages come from scripts/install-client-deps.sh; a test whose toolchain or
# packages are missing reports "skipped" (exit 77) instead of failing.
find_program(TBLOG_NODE_EXECUTABLE node)
if(TBLOG_NODE_EXECUTABLE)
  # node_client: the protocol tests (a fake server), the end-to-end tests,
  # the restart-without-loss and every-kind tests. node_client_package: the
  # package packed, installed outside the checkout and used (slow: npm, tsc).
  set(_tblog_node_check "if [ ! -d node_modules/@grpc/grpc-js ]; then echo 'node_client: client/node/node_modules missing; run scripts/install-client-deps.sh'; exit 77; fi")
  add_test(NAME node_client
    COMMAND sh -c "${_tblog_node_check}; exec \"$0\" --test test/*.test.js"
            ${TBLOG_NODE_EXECUTABLE}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/client/node)
  add_test(NAME node_client_package
    COMMAND sh -c "${_tblog_node_check}; exec \"$0\" --test test/package/"
            ${TBLOG_NODE_EXECUTABLE}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/client/node)
  set_tests_properties(node_client node_client_package PROPERTIES
    ENVIRONMENT "TBLOGD_BINARY=$<TARGET_FILE:tblogd>"
    SKIP_RETURN_CODE 77
    TIMEOUT 600)
else()
  message(STATUS "node not found: the node_client test is not registered (scripts/install-client-deps.sh)")
endif()

add_test(NAME go_client
  COMMAND ${PROJECT_SOURCE_DIR}/client/go/run_tests.sh)
set_tests_properties(go_client PROPERTIES
  ENVIRONMENT "TBLOGD_BINARY=$<TARGET_FILE:tblogd>;TBLOG_GO_WORKDIR=${CMAKE_CURRENT_BINARY_DIR}/go_client"
  SKIP_RETURN_CODE 77
  TIMEOUT 600)

# The committed Go stubs (client/go/src/tblog/v1) are what the proto generates:
# fails with "run client/go/generate.sh" when a proto change was not regenerated.
add_test(NAME go_stubs_current
  COMMAND ${PROJECT_SOURCE_DIR}/client/go/generate.sh --check)
set_tests_properties(go_stubs_current PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
