# imgjudge_embed_text(OUTPUT cpp SOURCE file SYMBOL name): generates a .cpp that
# defines `extern const char* const <name>` holding the file's text, so that
# bundled data (the default constitution) needs no file at run time.
function(imgjudge_embed_text)
  cmake_parse_arguments(ARG "" "OUTPUT;SOURCE;SYMBOL;NAMESPACE" "" ${ARGN})
  file(READ "${ARG_SOURCE}" IMGJUDGE_EMBEDDED_TEXT)
  string(FIND "${IMGJUDGE_EMBEDDED_TEXT}" ")ij_text\"" delimiter_used)
  if(NOT delimiter_used EQUAL -1)
    message(FATAL_ERROR "${ARG_SOURCE} contains the raw-string delimiter")
  endif()
  set(IMGJUDGE_EMBEDDED_SYMBOL "${ARG_SYMBOL}")
  set(IMGJUDGE_EMBEDDED_NAMESPACE "${ARG_NAMESPACE}")
  configure_file("${PROJECT_SOURCE_DIR}/cmake/embedded_text.cpp.in" "${ARG_OUTPUT}" @ONLY)
  set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${ARG_SOURCE}")
endfunction()
