# The Python client (client/python): its generated protobuf/gRPC modules, and
# its pytest suite run against the real tblogd. Included from tests/CMakeLists.txt.
#
# The stubs are generated into <build>/client/python/tblog_proto by
# scripts/gen_python_stubs.sh; the package finds them through TBLOG_PROTO_PATH.
set(TBLOG_PY_PROTO_DIR "${PROJECT_BINARY_DIR}/client/python/tblog_proto")
file(GLOB TBLOG_PY_PROTO_SOURCES CONFIGURE_DEPENDS
  "${PROJECT_SOURCE_DIR}/proto/tblog/v1/*.proto"
  "${PROJECT_SOURCE_DIR}/proto/tblog/tensorboard/*.proto")
add_custom_command(
  OUTPUT "${TBLOG_PY_PROTO_DIR}/.stamp"
  COMMAND bash "${PROJECT_SOURCE_DIR}/scripts/gen_python_stubs.sh" "${TBLOG_PY_PROTO_DIR}"
  DEPENDS ${TBLOG_PY_PROTO_SOURCES} "${PROJECT_SOURCE_DIR}/scripts/gen_python_stubs.sh"
  COMMENT "Python stubs for proto/tblog"
  VERBATIM)
add_custom_target(tblog_python_stubs ALL DEPENDS "${TBLOG_PY_PROTO_DIR}/.stamp")

set(TBLOG_PYTHON "/usr/bin/python3" CACHE FILEPATH
  "Python with grpcio, protobuf, numpy and pytest (Debian's), for the client's tests")
add_test(NAME python_client
  COMMAND "${TBLOG_PYTHON}" -m pytest -q -p no:cacheprovider "${PROJECT_SOURCE_DIR}/client/python/tests")
set_tests_properties(python_client PROPERTIES
  TIMEOUT 600
  ENVIRONMENT "TBLOGD_BINARY=$<TARGET_FILE:tblogd>;TBLOG_PROTO_PATH=${TBLOG_PY_PROTO_DIR};PYTHONPATH=${PROJECT_SOURCE_DIR}/client/python")
