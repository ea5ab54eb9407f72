# Tests of the daemon (server/daemon), one file per unit. The converter's and
# names' tests link only tblog_daemon_convert, not the gRPC side.
tblog_add_test(names_test SOURCES daemon/names_test.cc LIBS tblog_daemon_convert)
# record_converter_test covers the dispatch and the golden files, one
# convert_<kind>_test per unit under server/daemon/convert/.
foreach(unit record_converter convert_scalars convert_histogram convert_image convert_text_audio
    convert_pr_curve convert_hparams convert_graph_embedding convert_charge convert_video_mesh)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon_convert)
endforeach()
foreach(unit worker_pool byte_budget checkpoint resume_scan run run_leases run_registry service aggregate
    contribution_record config metrics log_rate_limit rejection_log write_batch_call node_reduce)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon)
endforeach()
# RunFiles' directory fsyncs (its recovery side is in resume_scan_test).
tblog_add_test(run_files_test SOURCES daemon/run_files_test.cc LIBS tblog_daemon)

# The metrics of the real tblogd, scraped and parsed by the official
# Prometheus text-format parser (Debian's python3-prometheus-client), talking
# to the daemon through the Python stubs of tests/python/tests.cmake (which
# declares TBLOG_PYTHON too; this file is included first).
set(TBLOG_PYTHON "/usr/bin/python3" CACHE FILEPATH
  "Python with grpcio, protobuf, numpy and pytest (Debian's), for the client's tests")
add_test(NAME metrics_scrape
  COMMAND "${TBLOG_PYTHON}" -m pytest -q -p no:cacheprovider
          "${CMAKE_CURRENT_SOURCE_DIR}/daemon/metrics_scrape_test.py")
set_tests_properties(metrics_scrape PROPERTIES
  TIMEOUT 300
  ENVIRONMENT "TBLOGD_BINARY=$<TARGET_FILE:tblogd>;TBLOG_PROTO_PATH=${PROJECT_BINARY_DIR}/client/python/tblog_proto")
# Leases against the real tblogd: writers are the C++ client, one of them a
# child process that the test kills with SIGKILL.
add_executable(lease_writer_child daemon/lease_writer_child.cc)
target_link_libraries(lease_writer_child PRIVATE tblog_client)
tblog_set_warnings(lease_writer_child)
tblog_add_test(leases_e2e_test SOURCES daemon/leases_e2e_test.cc
  LIBS tblog_client tblog_engine tblog_daemon_process)
target_compile_definitions(leases_e2e_test PRIVATE
  LEASE_WRITER_CHILD="$<TARGET_FILE:lease_writer_child>")
add_dependencies(leases_e2e_test lease_writer_child tblogd)
# The sequence contract, durability of a quiet writer and RLIMIT_FSIZE, end to
# end through the real tblogd process.
tblog_add_test(sequence_durability_test SOURCES daemon/sequence_durability_test.cc
  LIBS tblog_daemon tblog_daemon_process)
add_dependencies(sequence_durability_test tblogd)
tblog_add_test(sequence_contract_test SOURCES daemon/sequence_contract_test.cc LIBS tblog_daemon)
# TLS and tokens: certificates are made at test time by Debian's openssl.
foreach(unit auth tls)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon)
  target_compile_definitions(${unit}_test PRIVATE
    TBLOG_CERT_SCRIPT="${PROJECT_SOURCE_DIR}/tests/support/make_test_certs.sh")
endforeach()
# The attacks of issue 10 (foreign writer ids, reserved names, nested runs,
# unparsable requests) on a real tblogd child process; ownership with tokens
# through the caller-identity seam, in process.
tblog_add_test(ownership_test SOURCES daemon/ownership_test.cc
  LIBS tblog_daemon tblog_daemon_process)
tblog_add_test(run_owner_test SOURCES daemon/run_owner_test.cc LIBS tblog_daemon)
# gRPC health follows Start and shutdown: a real Daemon held part way through
# its Start by a FileSystem that waits.
tblog_add_test(health_test SOURCES daemon/health_test.cc LIBS tblog_daemon)
# The fixture of the upstream and budget end-to-end tests: named tblogds under
# one root, writer options, reading points back, memory and metrics, raw
# WriteBatch calls (tests/support/upstream_fixture.h).
add_library(tblog_upstream_fixture STATIC support/upstream_fixture.cc)
target_include_directories(tblog_upstream_fixture PUBLIC ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(tblog_upstream_fixture
  PUBLIC tblog_client tblog_engine tblog_api_proto tblog_daemon_process gRPC::grpc++ GTest::gtest
  PRIVATE PkgConfig::HTTPLIB)
# daemon_test_util.h's golden_util.h names the golden files' folder.
target_compile_definitions(tblog_upstream_fixture PRIVATE TBLOG_GOLDEN_DIR="${TBLOG_GOLDEN_DIR}")
tblog_set_warnings(tblog_upstream_fixture)
# The in-flight budget against a real tblogd: parked unary calls, no loss, a
# batch larger than the budget (README, "Memory").
tblog_add_test(budget_e2e_test SOURCES daemon/budget_e2e_test.cc LIBS tblog_upstream_fixture)
# Exclusive addresses: a second real tblogd on a port or socket in use exits
# non-zero naming it.
tblog_add_test(address_e2e_test SOURCES daemon/address_e2e_test.cc LIBS tblog_daemon_process)
target_compile_definitions(address_e2e_test PRIVATE TBLOGD_BINARY="$<TARGET_FILE:tblogd>")
add_dependencies(address_e2e_test tblogd)
# Reductions across writers against the real tblogd: 8 rank processes
# (reduce_rank_child, the C++ client) reduced into one run, one of them killed
# with SIGKILL; histograms merged; validation through raw WriteBatch calls.
add_executable(reduce_rank_child daemon/reduce_rank_child.cc)
target_link_libraries(reduce_rank_child PRIVATE tblog_client)
tblog_set_warnings(reduce_rank_child)
tblog_add_test(reduce_e2e_test SOURCES daemon/reduce_e2e_test.cc
  LIBS tblog_engine tblog_api_proto tblog_daemon_process gRPC::grpc++)
target_compile_definitions(reduce_e2e_test PRIVATE
  REDUCE_RANK_CHILD="$<TARGET_FILE:reduce_rank_child>")
add_dependencies(reduce_e2e_test reduce_rank_child tblogd)
# Upstream mode (issue 11): node tblogds forwarding to an upstream tblogd,
# three real processes killed with SIGKILL and restarted, the upstream away.
tblog_add_test(upstream_e2e_test SOURCES daemon/upstream_e2e_test.cc LIBS tblog_upstream_fixture)
add_dependencies(upstream_e2e_test tblogd)
# --upstream-forward reduced: nodes write their runs and send partials of the
# reduced records upstream; kill -9 of nodes (and of the upstream).
tblog_add_test(upstream_reduced_e2e_test SOURCES daemon/upstream_reduced_e2e_test.cc LIBS tblog_upstream_fixture)
add_dependencies(upstream_reduced_e2e_test tblogd)
tblog_add_test(upstream_flags_test SOURCES daemon/upstream_flags_test.cc LIBS tblog_daemon)
# Shared-memory tensors against a real tblogd: equal to bytes, forged and
# rewritten slices, refused, full and absent rings, a client killed holding
# slots (README, "Shared memory").
tblog_add_test(shm_e2e_test SOURCES daemon/shm_e2e_test.cc
  LIBS tblog_client tblog_engine tblog_api_proto tblog_daemon_process gRPC::grpc++)
target_include_directories(shm_e2e_test PRIVATE ${PROJECT_SOURCE_DIR}/client/src)
add_dependencies(shm_e2e_test tblogd)
# The Write stream's tag dictionary (tblog.proto, WriteRequest.stream_tags)
# against a real tblogd: across batches and reconnects, undefined ids, the
# cap, WriteBatch, and byte-identical to batch-local dictionaries.
tblog_add_test(stream_tags_e2e_test SOURCES daemon/stream_tags_e2e_test.cc
  LIBS tblog_engine tblog_api_proto tblog_daemon_process gRPC::grpc++)
add_dependencies(stream_tags_e2e_test tblogd)
# Crash durability of pending reductions (issue 11): the writing tblogd killed
# with SIGKILL while ranks write reduced scalars and a merged histogram.
tblog_add_test(reduce_durability_e2e_test SOURCES daemon/reduce_durability_e2e_test.cc LIBS tblog_upstream_fixture)
add_dependencies(reduce_durability_e2e_test tblogd)
# Upstream mode's operations: WriteBatch under the node's budget, keepalive
# with a frozen upstream, token rotation, the tblogd_upstream_* metrics.
tblog_add_test(upstream_ops_e2e_test SOURCES daemon/upstream_ops_e2e_test.cc
  LIBS tblog_upstream_fixture)
add_dependencies(upstream_ops_e2e_test tblogd)
