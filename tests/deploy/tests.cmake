# The deployment manifests parse and agree with the image (pytest + PyYAML).
add_test(NAME deploy_manifests
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_SOURCE_DIR}/deploy/test_manifests.py)
# The socket's and files' modes, and the deployment's three uids (as root),
# against the real tblogd and the every-kind streamer.
tblog_add_test(permissions_e2e_test SOURCES deploy/permissions_e2e_test.cc
  LIBS tblog_daemon_process absl::time)
add_dependencies(permissions_e2e_test tblogd tblog-stream-every-kind)
target_compile_definitions(permissions_e2e_test PRIVATE
  TBLOG_TBLOGD="$<TARGET_FILE:tblogd>"
  TBLOG_STREAMER="$<TARGET_FILE:tblog-stream-every-kind>"
  TBLOG_CHECK_LOGDIR="${CMAKE_CURRENT_SOURCE_DIR}/container/check_logdir.py")
