# Runs one CLI invocation and checks its exit status and output.
#   cmake -DPROGRAM=path -DARGS="arg|arg|..." -DEXPECT_EXIT=N [-DEXPECT_OUTPUT=regex]
#         [-DREJECT_OUTPUT=regex] -P run_cli.cmake
string(REPLACE "|" ";" arg_list "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${arg_list} RESULT_VARIABLE exit_code OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
# EXPECT_EXIT may list alternatives, e.g. "0|1" for a verdict of random weights.
if(NOT exit_code MATCHES "^(${EXPECT_EXIT})$")
  message(FATAL_ERROR "exit status ${exit_code}, expected ${EXPECT_EXIT}\n--- output ---\n${all}")
endif()
if(DEFINED EXPECT_OUTPUT AND NOT all MATCHES "${EXPECT_OUTPUT}")
  message(FATAL_ERROR "output does not match '${EXPECT_OUTPUT}'\n--- output ---\n${all}")
endif()
if(DEFINED REJECT_OUTPUT AND all MATCHES "${REJECT_OUTPUT}")
  message(FATAL_ERROR "output matches '${REJECT_OUTPUT}' but must not\n--- output ---\n${all}")
endif()
