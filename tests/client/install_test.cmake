# cmake -DBUILD_DIR=<tblog build> -DCONSUMER_DIR=<consumer source> -DWORK_DIR=<scratch> -P install_test.cmake
# Installs the tblog_client component into a scratch prefix, then configures,
# builds and runs a consumer project that uses find_package(tblog).
foreach(var BUILD_DIR CONSUMER_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install_test.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

run_step("install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
  --component tblog_client)
foreach(file include/tblog/client.h include/tblog/v1/tblog.pb.h)
  if(NOT EXISTS "${WORK_DIR}/prefix/${file}")
    message(FATAL_ERROR "install: ${file} missing")
  endif()
endforeach()
run_step("configure consumer" ${CMAKE_COMMAND} -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build" -G Ninja
  "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_BUILD_TYPE=Release)
run_step("build consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j 2)
run_step("run consumer" "${WORK_DIR}/build/consumer")
file(REMOVE_RECURSE "${WORK_DIR}")
