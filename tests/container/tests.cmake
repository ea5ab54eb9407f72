# tblog-stream-every-kind: the client side of scripts/container-test.sh, which
# runs it against the tblogd container (not a CTest test: it needs podman).
add_executable(tblog-stream-every-kind ${CMAKE_CURRENT_SOURCE_DIR}/container/stream_every_kind.cc)
target_link_libraries(tblog-stream-every-kind PRIVATE tblog_client tblog_engine)
tblog_set_warnings(tblog-stream-every-kind)
