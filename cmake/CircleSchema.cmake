# The Circle schema header, generated at build time by Debian's flatc from schemas/circle_schema.fbs
# (never committed), as the INTERFACE target `circle_schema`. Used by the main build and by the
# standalone fuzzer build (tests/fuzz).
find_program(FLATC flatc REQUIRED)
get_filename_component(CIRCLE_SCHEMA ${CMAKE_CURRENT_LIST_DIR}/../schemas/circle_schema.fbs ABSOLUTE)
set(CIRCLE_SCHEMA_GEN_DIR ${CMAKE_CURRENT_BINARY_DIR}/generated)
add_custom_command(
  OUTPUT ${CIRCLE_SCHEMA_GEN_DIR}/circle_schema_generated.h
  COMMAND ${FLATC} --cpp --gen-mutable -o ${CIRCLE_SCHEMA_GEN_DIR} ${CIRCLE_SCHEMA}
  DEPENDS ${CIRCLE_SCHEMA}
  COMMENT "flatc: generating the Circle schema header")
add_custom_target(circle_schema_header DEPENDS ${CIRCLE_SCHEMA_GEN_DIR}/circle_schema_generated.h)
add_library(circle_schema INTERFACE)
add_dependencies(circle_schema circle_schema_header)
target_include_directories(circle_schema INTERFACE ${CIRCLE_SCHEMA_GEN_DIR})
